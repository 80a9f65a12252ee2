/* Watching the job: GET /jobs/{id} on a timer, everything on the page drawn from what it says, and the clocks
 * (time elapsed, checkout closing, deletion). */

import { api } from './api.js';
import { checkoutClosed, confirmingPayment, focusPayLinkSoon, renderPayment } from './checkout.js';
import { checkoutExpired, jobGone, linkDead } from './deletion.js';
import { setText, show, showJobError, ui } from './dom.js';
import { formatClock, formatElapsed, formatRemaining, plural, styleName } from './format.js';
import { renderGallery, renderMore } from './gallery.js';
import { setPhase } from './phase.js';
import { intakeProblem, MIN_FILES, renderFiles } from './photos.js';
import { DELIVERED, FINISHED, now, state } from './state.js';

const POLL_MS = 2000; // each look is an API call, a Lambda invocation and a few DynamoDB reads
const IDLE_POLL_MS = 5000; // while the job waits for replacement photos (or for payment)
const READY_REFRESH_MS = 30 * 60 * 1000; // result links live 1 h: renew them well before
const REFUND_POLL_MS = 15000; // a finished job whose refund is still on its way

let pollTimer = null;
let tickTimer = null; // every second while the job is checked or made: the elapsed time
let countdownTimer = null; // every 30 s once it is done: the time left before deletion
let pollFailures = 0;

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, ms);
}

/** Look at the job now, draw it, and decide when to look again. */
export async function poll() {
  clearTimeout(pollTimer);
  if (!state.job) return;
  const jobId = state.job.jobId;
  const token = state.job.token;
  try {
    const { data } = await api('GET', `/jobs/${jobId}`);
    if (state.job?.jobId !== jobId) return;
    state.fromLink = false;
    pollFailures = 0;
    state.lastRefresh = Date.now();
    showJobError('');
    render(data);
  } catch (error) {
    if (state.job?.jobId !== jobId) return;
    if ((error.status === 404 || error.status === 410) && state.job.token !== token) {
      schedulePoll(0); // asked with the token a new link just replaced: ask again with the new one
      return;
    }
    if (error.status === 404 || error.status === 410) {
      if (state.fromLink) linkDead();
      else if (state.job?.awaitingPayment) checkoutExpired();
      else jobGone();
      return;
    }
    pollFailures += 1;
    // One failed look is not worth a word; a run of them is.
    if (pollFailures >= 3) showJobError(`${error.message} Still trying…`);
  }
  if (!state.job || state.phase === 'deleted') return;
  const status = state.view?.status;
  if (state.view?.refund?.status === 'pending' && FINISHED.has(status)) schedulePoll(REFUND_POLL_MS);
  else if (DELIVERED.has(status)) schedulePoll(READY_REFRESH_MS);
  else if (status === 'awaiting_payment' && state.view.checkout_url && !confirmingPayment(state.view)) schedulePoll(IDLE_POLL_MS);
  // Finished, or uploading (submit looks once it is done): no next look, not even one asked for meanwhile.
  else if (FINISHED.has(status) || state.phase === 'uploading') clearTimeout(pollTimer);
  else schedulePoll(state.phase === 'replace' || state.phase === 'interrupted' ? IDLE_POLL_MS : POLL_MS);
}

function render(view) {
  state.view = view;
  renderFiles(view);
  renderStatus(view);
  renderPayment(view);
  renderBackdrop(view);
  renderProgress(view);
  renderGallery(view);
  renderHints(view);
  renderMore(view);
  tick();
}

/** Done (made, partly made or failed): the clocks change from elapsed time to the time left before deletion. */
function finish(closePhotos) {
  if (state.phase === 'done') return;
  setPhase('done');
  stopTicking();
  startCountdown();
  if (closePhotos) ui.filesBox.open = false; // the headshots matter now; the photo list stays one tap away
}

function renderStatus(view) {
  const checked = view.files.filter((f) => f.status === 'accepted' || f.status === 'refused').length;
  const waiting = view.files.filter((f) => f.status === 'awaiting_upload');
  let status = '';
  switch (view.status) {
    case 'collecting': {
      const localUploads = waiting.some((f) => state.items.find((item) => item.fileId === f.file_id && item.file));
      if (state.phase === 'uploading') {
        status = 'Uploading your photos…';
      } else if (waiting.length && !localUploads) {
        status = 'The upload was interrupted (this page was reloaded). Start over to choose your photos again.';
        if (state.phase !== 'interrupted') setPhase('interrupted');
        show(ui.uploadRetry, true);
        show(ui.retryButton, false);
      } else if (intakeProblem(view) && state.phase !== 'interrupted') {
        status = 'Your photos seem to show more than one person: remove the ones that are not of you or add photos of yourself, then submit again.';
        if (state.phase !== 'replace') {
          setPhase('replace');
          ui.fileInput.focus();
        }
      } else if (checked > 0 && state.phase !== 'interrupted') {
        status = `${plural(view.usable_files, 'photo is', 'photos are')} usable: we need at least ${MIN_FILES}.`;
        if (state.phase !== 'replace') {
          setPhase('replace');
          ui.fileInput.focus();
        }
      } else if (state.phase === 'interrupted') {
        status = 'Some photos did not upload.';
      }
      break;
    }
    case 'normalizing':
      status = `Checking your photos: ${checked} of ${view.files.filter((f) => f.status !== 'awaiting_upload').length} checked.`;
      if (state.phase === 'replace' || state.phase === 'pick') setPhase('watching');
      break;
    case 'awaiting_payment':
      if (state.phase !== 'paying') {
        const arrived = state.phase === 'watching' && state.job?.submittedAt && !state.job.awaitingPayment;
        setPhase('paying');
        stopTicking();
        ui.elapsed.textContent = '0 s';
        if (arrived) focusPayLinkSoon(); // just accepted on this page: the next step is to pay
      }
      if (confirmingPayment(view)) status = 'Thank you! Confirming your payment…';
      else if (checkoutClosed(view)) status = 'Checkout has closed.';
      else {
        const count = view.images_expected || state.price?.images;
        status = `Your photos are accepted. Pay to start making your ${count ? `${count} ` : ''}headshots.`;
      }
      break;
    case 'generating':
      status = state.moreAsked
        ? `Making 4 more like ${state.moreAsked}: ${view.images_done} of ${view.images_expected} done.${readyIn(view)}`
        : `Making your headshots: ${view.images_done} of ${view.images_expected} done.${readyIn(view)}`;
      if (state.phase !== 'watching') setPhase('watching');
      if (!tickTimer) startTicking();
      break;
    case 'ready':
      status = `Your ${plural(view.images_done, 'headshot is', 'headshots are')} ready.`;
      finish(true);
      break;
    case 'partial':
      status = `We could make only ${plural(view.images_done, 'headshot', 'headshots')} of ${view.images_expected}.`;
      finish(true);
      break;
    case 'failed':
      status = 'We could not make your headshots.';
      finish(false);
      break;
    default:
      status = '';
  }
  if (status && ui.jobStatus.textContent !== status) ui.jobStatus.textContent = status;
  const fellShort = view.status === 'failed' || view.status === 'partial';
  const problem = intakeProblem(view);
  // No single person in the photos: said where the photos are added, in the API's words, not twice.
  const intakeText = problem ? problem.message || view.message || '' : '';
  if (ui.intakeError.textContent !== intakeText || ui.intakeError.hidden === Boolean(intakeText)) setText(ui.intakeError, intakeText);
  const message = fellShort ? view.failure_reason || view.message : problem ? '' : view.message;
  setText(ui.jobMessage, message || '');
  ui.jobMessage.classList.toggle('notice-error', fellShort);
  show(ui.resultsActions, DELIVERED.has(view.status));
  show(ui.jobSection, true);
}

// The server's estimate (measured prediction times, place in the create line), in whole minutes.
function readyIn(view) {
  if (!view.estimated_ready_at) return '';
  const minutes = Math.ceil((Date.parse(view.estimated_ready_at) - Date.now()) / 60000);
  return minutes <= 1 ? ' Ready in about a minute.' : ` Ready in about ${minutes} minutes.`;
}

function renderBackdrop(view) {
  const backdrop = view.backdrop;
  const text = backdrop ? `Backdrop: ${backdrop.label}${backdrop.color ? ` (${backdrop.color})` : ''}.` : '';
  if (ui.backdropLine.textContent !== text) ui.backdropLine.textContent = text;
  show(ui.backdropLine, Boolean(text));
  ui.backdropLine.dataset.kind = backdrop ? backdrop.kind : '';
}

/** A bar per style while the headshots are made (kept once they are delivered). */
function renderProgress(view) {
  const running = view.status === 'normalizing' || view.status === 'generating';
  show(ui.progress, running);
  if (view.status !== 'generating' && !DELIVERED.has(view.status)) {
    ui.styleProgress.replaceChildren();
    return;
  }
  for (const style of view.styles) {
    let row = ui.styleProgress.querySelector(`li[data-style="${CSS.escape(style.style)}"]`);
    if (!row) {
      row = document.createElement('li');
      row.dataset.style = style.style;
      const label = document.createElement('span');
      label.className = 'style-label';
      label.id = `progress-label-${style.style}`;
      label.textContent = styleName(style.style);
      const bar = document.createElement('progress');
      bar.setAttribute('aria-labelledby', label.id);
      const count = document.createElement('span');
      count.className = 'style-count';
      row.append(label, bar, count);
      ui.styleProgress.append(row);
    }
    const bar = row.querySelector('progress');
    bar.max = Math.max(1, style.expected);
    bar.value = Math.min(style.done, style.expected);
    row.querySelector('.style-count').textContent = `${style.done} / ${style.expected}`;
  }
}

/** Advice about the photos (e.g. low_variety) in the API's words: it never blocks paying. */
function renderHints(view) {
  const hints = Array.isArray(view.hints) ? view.hints.filter((h) => h && typeof h.message === 'string' && h.message) : [];
  const key = hints.map((h) => `${h.code}:${h.message}`).join('|');
  if (ui.jobHints.dataset.key !== key) {
    ui.jobHints.dataset.key = key;
    ui.jobHints.replaceChildren(
      ...hints.map((hint) => {
        const p = document.createElement('p');
        p.className = 'job-hint';
        if (typeof hint.code === 'string') p.dataset.code = hint.code;
        p.textContent = hint.message;
        return p;
      }),
    );
  }
  show(ui.jobHints, hints.length > 0);
}

/* ---------------------------------------------------------------- clocks */

export function startTicking() {
  stopTicking();
  tickTimer = setInterval(tick, 1000);
}

function stopTicking() {
  clearInterval(tickTimer);
  tickTimer = null;
}

function startCountdown() {
  clearInterval(countdownTimer);
  countdownTimer = setInterval(tick, 30000);
}

function tick() {
  const paidAt = Date.parse(state.view?.payment?.paid_at || '');
  const started = Number.isNaN(paidAt) ? state.job?.submittedAt : paidAt; // generation starts with the payment
  if (started) ui.elapsed.textContent = formatElapsed(now() - started);
  const closes = Date.parse(state.view?.checkout_expires_at || '');
  if (state.view?.status === 'awaiting_payment' && !Number.isNaN(closes)) {
    const left = closes - now();
    ui.countdown.textContent =
      left > 0
        ? `Checkout stays open until ${formatClock(closes)} (${formatRemaining(left)}). If you do not pay by then, your photos are deleted.`
        : 'Checkout has closed: your photos are being deleted.';
    show(ui.countdown, true);
    return;
  }
  const expires = Date.parse(state.view?.expires_at || '');
  if (!Number.isNaN(expires)) {
    const left = expires - now();
    const when = new Date(expires).toLocaleString(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
    ui.countdown.textContent =
      left > 0
        ? `Everything is deleted in ${formatRemaining(left)} (${when}), or now if you ask.`
        : 'Everything is being deleted now.';
    show(ui.countdown, true);
  }
}

/** No more looks or clocks, and the job's status lines empty. */
export function resetProgress() {
  clearTimeout(pollTimer);
  stopTicking();
  clearInterval(countdownTimer);
  ui.styleProgress.replaceChildren();
  setText(ui.jobMessage, '');
  setText(ui.intakeError, '');
  delete ui.jobHints.dataset.key;
  ui.jobHints.replaceChildren();
  show(ui.jobHints, false);
  ui.backdropLine.textContent = '';
  show(ui.backdropLine, false);
  setText(ui.jobError, '');
  ui.jobStatus.textContent = '';
  show(ui.countdown, false);
}
