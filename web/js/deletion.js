/* The end of a job on this page: "Delete everything now" (DELETE /jobs/{id}) and its receipt, a job found gone,
 * a dead private link, an expired checkout; and starting over. */

import { api, discardJob } from './api.js';
import { resetPayment } from './checkout.js';
import { setBusy, show, showJobError, ui } from './dom.js';
import { formatMoney } from './format.js';
import { resetGallery } from './gallery.js';
import { setPhase } from './phase.js';
import { resetPhotos } from './photos.js';
import { resetPrivateLink } from './private-link.js';
import { resetProgress } from './progress.js';
import { clearSession, state } from './state.js';

export function askDelete() {
  if (typeof ui.dialog.showModal === 'function') ui.dialog.showModal();
  else if (window.confirm('Delete your photos and all your headshots now? This cannot be undone.')) deleteJob();
}

export async function deleteJob() {
  if (ui.dialog.open) ui.dialog.close();
  showJobError('');
  setBusy(ui.deleteButton, true, 'Deleting…');
  const paid = state.view?.payment;
  const refundOnDelete = paid && !state.view.images_done && !state.view.refund ? formatMoney(paid.amount_total, paid.currency) : '';
  let receipt = '';
  let underWay = false; // 202: recorded, and finished by the server within a minute (a refund or a purge left)
  try {
    const { response } = await api('DELETE', `/jobs/${state.job.jobId}`);
    receipt = response.headers.get('X-Deletion-Receipt') || '';
    underWay = response.status === 202;
  } catch (error) {
    setBusy(ui.deleteButton, false);
    if (error.status === 404) jobGone();
    else showJobError(error.message);
    return;
  }
  setBusy(ui.deleteButton, false);
  showEnd(
    underWay ? 'Deletion under way' : 'Everything is deleted',
    (underWay
      ? 'Your deletion is recorded; your photos, your headshots and the records of this job are gone within a minute.'
      : 'Your photos, your headshots and the records of this job are gone from our storage.') +
      (refundOnDelete ? ` No headshot was made, so your ${refundOnDelete} is refunded.` : ''),
    { receipt },
  );
}

export function jobGone() {
  showEnd(
    'This job is gone',
    'It was deleted, its 48 hours are over, or a new private link was made for it (the old one stops working at once). Nothing of a deleted job is kept.',
  );
}

/** Our token no longer opens the job: deleted, expired, or a new link was made for it somewhere else. */
export function linkDead() {
  showEnd(
    'This link no longer works',
    'The job was deleted or its 48 hours are over, or a new private link was made for it on another device or tab ' +
      '(the old link stops working at once). If you made a new link, open that one.',
  );
}

/** The job vanished while it waited for payment: its checkout expired and its photos were deleted. */
export function checkoutExpired() {
  showEnd(
    'Your checkout expired',
    'The payment was not made before checkout closed, so we deleted your photos and everything of this job. Nothing was charged.',
    { newJobLabel: 'Start over' },
  );
}

/** The job is over for this page: forget it and say why, with the receipt of a deletion if there is one. */
function showEnd(title, text, { receipt = '', newJobLabel = 'Start a new job' } = {}) {
  forgetJob();
  ui.deletedTitle.textContent = title;
  ui.deletedText.textContent = text;
  ui.newJob.textContent = newJobLabel;
  ui.receipt.textContent = receipt;
  show(ui.receiptLine, Boolean(receipt));
  setPhase('deleted');
  ui.deletedTitle.focus();
}

/** Drop the token, the photos and the results from the page. */
function forgetJob() {
  clearSession();
  state.job = null;
  state.view = null;
  resetProgress();
  resetPhotos();
  resetGallery();
  resetPayment();
  resetPrivateLink();
}

export function startOver() {
  // Delete the unfinished job too: nothing of it should wait 48 hours.
  if (state.job) discardJob(state.job.jobId, state.job.token);
  resetToPick();
}

export function resetToPick() {
  forgetJob();
  setPhase('pick');
  ui.fileInput.focus();
}
