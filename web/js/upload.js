/* From chosen photos to a job being checked: POST /jobs (or …/files for replacements), a PUT of each photo to
 * its presigned URL, then POST /jobs/{id}/submit. */

import { api, safeUrl } from './api.js';
import { jobGone } from './deletion.js';
import { setBusy, setText, show, showPickError, ui } from './dom.js';
import { plural } from './format.js';
import { setPhase } from './phase.js';
import { MAX_FILES, MIN_FILES, pendingItems, setItemState } from './photos.js';
import { poll, startTicking } from './progress.js';
import { now, saveSession, state } from './state.js';

const PARALLEL_UPLOADS = 3;

function chosenStyles() {
  return Array.from(document.querySelectorAll('input[name="style"]:checked')).map((input) => input.value);
}

function chosenSubject() {
  return document.querySelector('input[name="subject"]:checked')?.value || 'person';
}

/** The backdrop fields of POST /jobs: a colour only with the solid backdrop (the API refuses it otherwise). */
function chosenBackdrop() {
  const backdrop = document.querySelector('input[name="backdrop"]:checked')?.value || 'studio_grey';
  return backdrop === 'solid' ? { backdrop, backdrop_color: ui.backdropColor.value } : { backdrop };
}

/** Picking a colour means the solid backdrop. */
export function chooseSolidBackdrop() {
  const solid = document.querySelector('input[name="backdrop"][value="solid"]');
  if (solid) solid.checked = true;
}

function fileSpec(item) {
  return { name: item.name, content_type: item.contentType, bytes: item.size };
}

export async function startJob() {
  showPickError('');
  const items = pendingItems();
  if (items.length < MIN_FILES) {
    showPickError(`Choose at least ${MIN_FILES} photos (you have ${items.length}).`);
    ui.fileInput.focus();
    return;
  }
  if (items.length > MAX_FILES) {
    showPickError(`Choose at most ${MAX_FILES} photos (you have ${items.length}).`);
    return;
  }
  const styles = chosenStyles();
  if (!styles.length) {
    showPickError('Choose at least one style.');
    document.querySelector('input[name="style"]')?.focus();
    return;
  }
  setBusy(ui.startButton, true, 'Starting…');
  let created;
  try {
    created = (await api('POST', '/jobs', { auth: false, body: { files: items.map(fileSpec), styles, subject: chosenSubject(), ...chosenBackdrop() } })).data;
  } catch (error) {
    setBusy(ui.startButton, false);
    showPickError(error.message);
    return;
  }
  setBusy(ui.startButton, false);
  state.job = { jobId: created.job_id, token: created.token, submittedAt: null };
  saveSession();
  attachTickets(items, created.uploads);
  setPhase('uploading');
  setText(ui.jobStatus, 'Uploading your photos…');
  await uploadAndSubmit(items);
}

/** Fewer than 3 usable photos: add the new ones to the job (POST /jobs/{id}/files), upload, submit again. */
export async function addReplacements() {
  showPickError('');
  const items = pendingItems();
  if (!items.length) {
    showPickError('Choose at least one replacement photo.');
    ui.fileInput.focus();
    return;
  }
  setBusy(ui.replaceButton, true, 'Uploading…');
  let added;
  try {
    added = (await api('POST', `/jobs/${state.job.jobId}/files`, { body: { files: items.map(fileSpec) } })).data;
  } catch (error) {
    setBusy(ui.replaceButton, false);
    showPickError(error.message);
    return;
  }
  setBusy(ui.replaceButton, false);
  attachTickets(items, added.uploads);
  setPhase('uploading');
  setText(ui.jobStatus, 'Uploading your new photos…');
  await uploadAndSubmit(items);
}

function attachTickets(items, tickets) {
  items.forEach((item, index) => {
    const ticket = tickets[index];
    item.ticket = ticket;
    item.fileId = ticket.file_id;
    item.upload = 'pending';
    item.el.li.dataset.fileId = ticket.file_id;
  });
}

async function uploadAndSubmit(items) {
  show(ui.uploadRetry, false);
  const failed = await uploadAll(items);
  if (failed.length) {
    setPhase('interrupted');
    show(ui.uploadRetry, true);
    showPickError(`${plural(failed.length, 'photo', 'photos')} did not upload. Retry, or start over.`);
    ui.retryButton.focus();
    return;
  }
  await submit();
}

/** Upload a few at a time; resolve to the items that did not make it. */
async function uploadAll(items) {
  const queue = items.filter((item) => item.upload !== 'done');
  const worker = async () => {
    while (queue.length) await uploadOne(queue.shift());
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
  return items.filter((item) => item.upload !== 'done');
}

/** XMLHttpRequest rather than fetch: it reports upload progress. Never rejects; the item says how it went. */
function uploadOne(item) {
  return new Promise((resolve) => {
    const url = safeUrl(item.ticket?.url);
    if (!url || !item.file) {
      item.upload = 'failed';
      setItemState(item, 'upload-failed', { message: 'there is no upload link for this photo.' });
      resolve();
      return;
    }
    if (item.ticket.expires_at && Date.parse(item.ticket.expires_at) < now()) {
      item.upload = 'failed';
      setItemState(item, 'upload-failed', { message: 'the upload link has expired: start over.' });
      resolve();
      return;
    }
    item.upload = 'uploading';
    setItemState(item, 'uploading', { fraction: 0 });
    const xhr = new XMLHttpRequest();
    xhr.open(item.ticket.method || 'PUT', url);
    // Exactly the signed headers, except Content-Length: the browser sets that itself.
    for (const [name, value] of Object.entries(item.ticket.headers || {})) {
      if (name.toLowerCase() !== 'content-length') xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable) return;
      const fraction = event.loaded / event.total;
      item.el.progress.value = Math.round(fraction * 100);
      setItemState(item, 'uploading', { fraction });
    });
    const fail = (message) => {
      item.upload = 'failed';
      setItemState(item, 'upload-failed', { message });
      resolve();
    };
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        item.upload = 'done';
        setItemState(item, 'uploaded');
        resolve();
      } else if (xhr.status === 403) {
        fail('the storage service refused the upload (the link may have expired).');
      } else {
        fail(`the storage service answered ${xhr.status}.`);
      }
    });
    xhr.addEventListener('error', () => fail('the connection was interrupted.'));
    xhr.addEventListener('abort', () => fail('the upload was stopped.'));
    xhr.addEventListener('timeout', () => fail('the upload took too long.'));
    xhr.send(item.file);
  });
}

export async function retryUploads() {
  showPickError('');
  const items = state.items.filter((item) => item.fileId && item.file && item.upload !== 'done');
  setBusy(ui.retryButton, true, 'Retrying…');
  setPhase('uploading');
  await uploadAndSubmit(items);
  setBusy(ui.retryButton, false);
}

async function submit() {
  setText(ui.jobStatus, 'Sending your photos for checking…');
  try {
    await api('POST', `/jobs/${state.job.jobId}/submit`);
  } catch (error) {
    if (error.status === 404) {
      jobGone();
      return;
    }
    setPhase('interrupted');
    show(ui.uploadRetry, true);
    showPickError(error.message);
    return;
  }
  state.job.submittedAt = now();
  saveSession();
  setPhase('watching');
  for (const item of state.items) if (item.fileId && item.upload === 'done' && !item.verdict) setItemState(item, 'queued');
  setText(ui.jobStatus, 'Checking your photos…');
  startTicking();
  poll();
}
