/* Portrait Studio: the page. No framework, no build step, nothing loaded from third parties: ES modules from
 * this origin only (js/), this one wires them to the page and starts.
 *
 * Flow: choose 3–10 photos → POST /jobs → PUT each file to its presigned URL → POST /jobs/{id}/submit → poll
 * GET /jobs/{id}: per-file verdicts, then payment on Stripe Checkout, then progress per style and results as they
 * land → gallery, "download all", countdown to deletion, "delete everything now" and its receipt. If fewer than 3
 * photos are usable the job goes back to collecting: add replacements, upload them, submit again.
 *
 *   js/api.js           the API client (errors in the API's words, the server's clock, safe links)
 *   js/photos.js        choosing photos, each one's line and verdict, removing them
 *   js/upload.js        creating the job, uploading, submitting
 *   js/checkout.js      price, Stripe Checkout, payment and refund
 *   js/progress.js      polling the job and drawing it; the clocks
 *   js/gallery.js       results by likeness, downloads, LinkedIn squares, More like this
 *   js/private-link.js  the private link (#job=…&token=…)
 *   js/deletion.js      deleting, the job's end, starting over
 *   js/phase.js, js/state.js, js/dom.js, js/format.js   shared: flow phase, state, elements, wording
 *
 * The job's token lives only in memory and in this tab's sessionStorage. All text coming from the API is put on
 * the page with textContent, never as HTML.
 */

import { loadPrice, noteCheckoutReturn, renderPrice } from './js/checkout.js';
import { askDelete, deleteJob, resetToPick, startOver } from './js/deletion.js';
import { setText, ui } from './js/dom.js';
import { downloadAll } from './js/gallery.js';
import { setPhase } from './js/phase.js';
import { addFiles } from './js/photos.js';
import { adoptLinkFromFragment, copyLink, linkFromFragment, rotateLink } from './js/private-link.js';
import { poll, startTicking } from './js/progress.js';
import { FINISHED, loadSession, state } from './js/state.js';
import { addReplacements, chooseSolidBackdrop, retryUploads, startJob } from './js/upload.js';

/* ---------------------------------------------------------------- photos in: the picker and drag and drop */

ui.fileInput.addEventListener('change', () => {
  addFiles(ui.fileInput.files);
  ui.fileInput.value = '';
});

const choosing = () => state.phase === 'pick' || state.phase === 'replace';
const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes('Files');
let dragDepth = 0; // enter and leave fire for every child crossed: the zone is lit until the last leave
document.addEventListener('dragenter', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth += 1;
  if (choosing()) ui.dropzone.classList.add('dragging');
});
document.addEventListener('dragover', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault(); // never let the browser open a dropped photo instead of the page
  event.dataTransfer.dropEffect = choosing() ? 'copy' : 'none';
});
document.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) ui.dropzone.classList.remove('dragging');
});
document.addEventListener('drop', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  ui.dropzone.classList.remove('dragging');
  addFiles(event.dataTransfer.files);
});

/* ---------------------------------------------------------------- buttons */

ui.backdropColor.addEventListener('input', chooseSolidBackdrop);
ui.startButton.addEventListener('click', startJob);
ui.replaceButton.addEventListener('click', addReplacements);
ui.retryButton.addEventListener('click', retryUploads);
ui.startOverButton.addEventListener('click', startOver);
ui.downloadAll.addEventListener('click', downloadAll);
ui.deleteButton.addEventListener('click', askDelete);
ui.confirmOk.addEventListener('click', deleteJob);
ui.confirmCancel.addEventListener('click', () => ui.dialog.close());
ui.newJob.addEventListener('click', resetToPick);
ui.copyLink.addEventListener('click', copyLink);
ui.rotateLink.addEventListener('click', rotateLink);
ui.linkField.addEventListener('focus', () => ui.linkField.select());

/* ---------------------------------------------------------------- the tab */

window.addEventListener('hashchange', () => {
  // A private link pasted into this tab's address bar: the page does not reload by itself for a new fragment.
  if (linkFromFragment()) window.location.reload();
});
document.addEventListener('visibilitychange', () => {
  // Back to the tab: look at once rather than wait for a throttled timer.
  if (document.visibilityState === 'visible' && state.job && state.view && !FINISHED.has(state.view.status)) poll();
});
window.addEventListener('pageshow', (event) => {
  // Back from checkout with the browser's back button: the page comes from the cache as it was left.
  if (event.persisted && state.job) poll();
});

/* ---------------------------------------------------------------- start */

noteCheckoutReturn();
// A private link (#job=…&token=…) names the job to show, whatever this tab had before; it is in
// sessionStorage now, read back below like any job of this tab.
state.fromLink = adoptLinkFromFragment();
state.job = null;

renderPrice();
loadPrice();
const saved = loadSession();
if (saved) {
  state.job = saved;
  setPhase('watching');
  setText(ui.jobStatus, state.checkoutReturn === 'success' ? 'Thank you! Confirming your payment…' : 'Looking at your job…');
  if (saved.submittedAt && !saved.awaitingPayment) startTicking();
  poll();
} else {
  setPhase('pick');
}
