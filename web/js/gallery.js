/* The headshots: each style's results the most like you first, their downloads (one, its LinkedIn square, or
 * all as a zip), and More like this. */

import { api, ApiError, genericMessage, safeUrl } from './api.js';
import { jobGone } from './deletion.js';
import { setBusy, setText, show, showJobError, ui } from './dom.js';
import { plural, styleName } from './format.js';
import { poll } from './progress.js';
import { DELIVERED, state } from './state.js';

const results = new Map(); // result path (without the signature) → its entry on the page
const styleGroups = new Map(); // style → {section, list, count}
let moreSeenStatus = ''; // the job's status at the last look, to notice a round being delivered

/** A style's results, the most like you first: `items` (likeness, closest) as the API gives them. */
function rankedResults(style) {
  const items = Array.isArray(style.items) ? style.items : [];
  const list = items.map((item) => ({
    url: item && item.url,
    likeness: Number.isInteger(item?.likeness) ? Math.max(0, Math.min(100, item.likeness)) : null,
    closest: item?.closest === true,
    linkedin_url: item?.linkedin_url,
    result: typeof item?.result === 'string' ? item.result : '', // its id, for More like this
    more: item?.more === true,
  }));
  // The API already orders them; sort (stably) anyway so the page never shows a less-like one first.
  return list
    .map((item, index) => ({ item, index }))
    .sort((a, b) => (b.item.likeness ?? -1) - (a.item.likeness ?? -1) || a.index - b.index)
    .map(({ item }) => item);
}

/** Signed links change at every look: a result is known by its URL without the query. */
function urlPath(value) {
  try {
    const url = new URL(value);
    return url.origin + url.pathname;
  } catch {
    return value;
  }
}

export function renderGallery(view) {
  let anyClosest = false;
  for (const style of view.styles) {
    const group = styleGroup(style.style);
    ui.gallery.append(group.section); // the API's order of styles, whatever order results land in
    const ranked = rankedResults(style);
    show(group.section, ranked.length > 0);
    if (!ranked.length) continue;
    const order = [];
    ranked.forEach((result, index) => {
      const url = safeUrl(result.url);
      if (!url) return;
      const key = urlPath(url);
      let entry = results.get(key);
      if (!entry) {
        entry = buildResult(style.style, index + 1, url);
        results.set(key, entry);
      }
      entry.url = url; // the freshest signed link, for downloads
      if (entry.img.dataset.failed === 'true') {
        entry.img.dataset.failed = 'false';
        entry.img.src = url;
      }
      entry.link.href = url;
      markCrop(entry, safeUrl(result.linkedin_url));
      // Results can land out of order (No. 5 before No. 1): number them by their place in the likeness order.
      if (entry.number !== index + 1) numberResult(entry, style.style, index + 1);
      markLikeness(entry, result);
      entry.resultId = result.result;
      show(entry.moreTag, result.more);
      if (result.closest) anyClosest = true;
      order.push(entry.li);
    });
    group.list.append(...order); // keeps the likeness order; moving a node does not reload its image
    group.count.textContent = `${ranked.length} of ${style.expected}`;
  }
  show(ui.likenessNote, anyClosest);
}

/** The headshot's 800 × 800 square for profile circles (LinkedIn), when it has one. */
function markCrop(entry, url) {
  entry.cropUrl = url;
  if (url) entry.cropLink.href = url;
  else entry.cropLink.removeAttribute('href');
  show(entry.cropLink, Boolean(url));
}

function markLikeness(entry, result) {
  const likeness = result.likeness === null ? '' : `Likeness ${result.likeness}`;
  if (entry.likeness.textContent !== likeness) entry.likeness.textContent = likeness;
  show(entry.likeness, Boolean(likeness));
  show(entry.badge, result.closest);
  entry.li.classList.toggle('closest', result.closest);
  if (result.likeness === null) delete entry.li.dataset.likeness;
  else entry.li.dataset.likeness = String(result.likeness);
}

function styleGroup(style) {
  let group = styleGroups.get(style);
  if (group) return group;
  const section = document.createElement('section');
  section.className = 'style-group';
  section.setAttribute('aria-labelledby', `gallery-title-${style}`);
  const heading = document.createElement('h3');
  heading.id = `gallery-title-${style}`;
  heading.textContent = `${styleName(style)} `;
  const count = document.createElement('span');
  count.className = 'style-count';
  heading.append(count);
  const list = document.createElement('ul');
  list.className = 'results';
  section.append(heading, list);
  group = { section, list, count };
  styleGroups.set(style, group);
  return group;
}

function buildResult(style, number, url) {
  const li = document.createElement('li');
  const figure = document.createElement('figure');
  const img = document.createElement('img');
  img.src = url;
  img.width = 1024;
  img.height = 1024;
  img.loading = 'lazy';
  img.decoding = 'async';
  img.addEventListener('error', () => {
    // The signed link may have expired: fetch fresh ones (at most once a minute).
    img.dataset.failed = 'true';
    if (Date.now() - state.lastRefresh > 60000 && state.job) poll();
  });
  // The closest ones first get a badge (text, not only colour); its explanation is the note above the gallery.
  const badge = document.createElement('p');
  badge.className = 'closest-badge';
  badge.textContent = 'Closest to you';
  badge.setAttribute('aria-describedby', 'likeness-note');
  badge.hidden = true;
  const caption = document.createElement('figcaption');
  const label = document.createElement('span');
  label.className = 'result-number';
  const likeness = document.createElement('span');
  likeness.className = 'likeness';
  likeness.hidden = true;
  const link = document.createElement('a');
  link.className = 'download';
  link.href = url;
  link.textContent = 'Download';
  const cropLink = document.createElement('a');
  cropLink.className = 'download download-crop';
  cropLink.textContent = 'LinkedIn square';
  cropLink.hidden = true;
  // Made by a round of More like this: said in words, so the new ones are easy to find among the others.
  const moreTag = document.createElement('p');
  moreTag.className = 'more-tag';
  moreTag.textContent = 'New: more like this';
  moreTag.hidden = true;
  const moreButton = document.createElement('button');
  moreButton.type = 'button';
  moreButton.className = 'button button-secondary button-small more-button';
  moreButton.textContent = 'More like this';
  moreButton.hidden = true;
  const entry = {
    li, img, link, cropLink, cropUrl: null, label, likeness, badge, moreTag, moreButton, resultId: '', url, number: 0, fileName: '',
  };
  moreButton.addEventListener('click', () => askMore(entry));
  link.addEventListener('click', (event) => {
    event.preventDefault();
    downloadImage(entry.url, entry.fileName);
  });
  cropLink.addEventListener('click', (event) => {
    event.preventDefault();
    if (entry.cropUrl) downloadImage(entry.cropUrl, entry.fileName.replace(/\.png$/, '-linkedin.jpg'));
  });
  caption.append(label, likeness, link, cropLink, moreButton);
  figure.append(badge, moreTag, img, caption);
  li.append(figure);
  numberResult(entry, style, number);
  return entry;
}

function numberResult(entry, style, number) {
  entry.number = number;
  entry.fileName = `headshot-${style.replace(/_/g, '-')}-${String(number).padStart(2, '0')}.png`;
  entry.img.alt = `${styleName(style)} headshot ${number}`;
  entry.label.textContent = `No. ${number}`;
  entry.link.download = entry.fileName;
  entry.link.setAttribute('aria-label', `Download ${styleName(style).toLowerCase()} headshot ${number}`);
  entry.cropLink.download = entry.fileName.replace(/\.png$/, '-linkedin.jpg');
  // Names that start with the words shown (label in name), and that no "Download … headshot 1" also matches.
  entry.cropLink.setAttribute('aria-label', `LinkedIn square of ${styleName(style).toLowerCase()} headshot ${number} (800 × 800)`);
  entry.moreButton.setAttribute('aria-label', `More like this: ${styleName(style).toLowerCase()} headshot ${number}`);
}

/* ---------------------------------------------------------------- More like this */

/** The rounds left, and a button on each headshot while a round can still be asked for. */
export function renderMore(view) {
  const delivered = DELIVERED.has(view.status);
  const left = Number.isInteger(view.more_rounds_left) ? Math.max(0, view.more_rounds_left) : 0;
  const offered = delivered && left > 0;
  if (delivered) state.moreAsked = null; // the round, if any, is delivered
  // A refusal stays beside the gallery until the job is delivered again (then it no longer holds).
  if (delivered && moreSeenStatus && !DELIVERED.has(moreSeenStatus)) setText(ui.moreError, '');
  moreSeenStatus = view.status;
  for (const entry of results.values()) {
    const usable = offered && Boolean(entry.resultId);
    show(entry.moreButton, usable);
    if (!usable) entry.moreButton.disabled = true;
    else if (entry.moreButton.getAttribute('aria-busy') !== 'true') entry.moreButton.disabled = false;
  }
  let text = '';
  if (offered) {
    text = `More like this: ${plural(left, 'round', 'rounds')} left. Each makes 4 more headshots like the one you pick.`;
  } else if (delivered && results.size) {
    text = 'You have used every round of More like this for this job.';
  }
  if (ui.moreRounds.textContent !== text) ui.moreRounds.textContent = text;
  show(ui.moreRounds, Boolean(text));
}

async function askMore(entry) {
  if (!state.job || !entry.resultId) return;
  setText(ui.moreError, '');
  for (const other of results.values()) other.moreButton.disabled = true; // one round at a time
  setBusy(entry.moreButton, true, 'Asking…');
  const jobId = state.job.jobId;
  try {
    await api('POST', `/jobs/${jobId}/more`, { body: { result: entry.resultId } });
    if (state.job?.jobId !== jobId) return;
    state.moreAsked = entry.img.alt.toLowerCase();
    // Its buttons go away while the job is generating again; the progress is told at the top of the job.
    ui.jobTitle.focus();
    await poll(); // then every few seconds until the round is delivered
    setBusy(entry.moreButton, false); // only now: no second press can slip in before the job says generating
    if (state.view) renderMore(state.view);
  } catch (error) {
    setBusy(entry.moreButton, false);
    if (error.status === 404) {
      jobGone();
      return;
    }
    // 409 job_not_finished, more_limit_reached, job_gone: the API's own words, beside the gallery.
    setText(ui.moreError, error.message);
    if (state.view) renderMore(state.view);
    if (!entry.moreButton.hidden) entry.moreButton.focus();
    poll(); // the rounds left may have changed elsewhere (another tab, the private link)
  }
}

/* ---------------------------------------------------------------- downloads */

/** The bucket is another origin, where the download attribute is ignored: fetch the image (CORS GET)
 * and save it under a good name; if that fails, open the image so it can be saved by hand. */
async function downloadImage(url, fileName) {
  try {
    const response = await fetch(url, { mode: 'cors', credentials: 'omit', referrerPolicy: 'no-referrer' });
    if (!response.ok) throw new Error(String(response.status));
    const blobUrl = URL.createObjectURL(await response.blob());
    clickLink(blobUrl, fileName);
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
  } catch {
    window.open(url, '_blank', 'noopener');
  }
}

function clickLink(href, fileName) {
  const link = document.createElement('a');
  link.href = href;
  link.download = fileName;
  link.rel = 'noopener';
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
}

export async function downloadAll() {
  showJobError('');
  setBusy(ui.downloadAll, true, 'Preparing the zip…');
  try {
    const { data } = await api('GET', `/jobs/${state.job.jobId}/archive`);
    const url = safeUrl(data.url);
    if (!url) throw new ApiError(genericMessage(500), 500, 'bad_url');
    ui.archiveLink.href = url;
    ui.archiveLink.download = 'portrait-studio-headshots.zip';
    ui.archiveLink.textContent = `If the download did not start, use this link (zip, ${plural(data.images, 'image', 'images')}).`;
    show(ui.archiveLink, true);
    clickLink(url, 'portrait-studio-headshots.zip');
  } catch (error) {
    if (error.status === 404) jobGone();
    else showJobError(error.message);
  } finally {
    setBusy(ui.downloadAll, false);
  }
}

export function resetGallery() {
  results.clear();
  styleGroups.clear();
  ui.gallery.replaceChildren();
  ui.archiveLink.removeAttribute('href');
  show(ui.archiveLink, false);
  show(ui.likenessNote, false);
  state.moreAsked = null;
  moreSeenStatus = '';
  setText(ui.moreError, '');
  ui.moreRounds.textContent = '';
  show(ui.moreRounds, false);
}
