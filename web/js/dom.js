/* The page's elements, looked up once, and the few ways every module changes them. */

const $ = (id) => document.getElementById(id);

export const ui = {
  pickSection: $('step-pick'),
  pickTitle: $('pick-title'),
  dropzone: $('dropzone'),
  dropzoneLead: $('dropzone-lead'),
  fileInput: $('file-input'),
  filesTitle: $('files-title'),
  filesBox: $('files-box'),
  fileList: $('file-list'),
  filesStatus: $('files-status'),
  pickSummary: $('pick-summary'),
  options: $('options'),
  priceLine: $('price-line'),
  startButton: $('start-button'),
  replacePanel: $('replace-panel'),
  replaceButton: $('replace-button'),
  uploadRetry: $('upload-retry'),
  retryButton: $('retry-button'),
  startOverButton: $('start-over'),
  pickError: $('pick-error'),
  jobSection: $('step-job'),
  jobTitle: $('job-title'),
  jobStatus: $('job-status'),
  jobMessage: $('job-message'),
  paymentLine: $('payment-line'),
  backdropLine: $('backdrop-line'),
  backdropColor: $('backdrop-color'),
  refundLine: $('refund-line'),
  payPanel: $('pay-panel'),
  payNote: $('pay-note'),
  payLink: $('pay-link'),
  payPreparing: $('pay-preparing'),
  jobError: $('job-error'),
  countdown: $('countdown'),
  progress: $('progress'),
  elapsed: $('elapsed'),
  styleProgress: $('style-progress'),
  resultsActions: $('results-actions'),
  downloadAll: $('download-all'),
  archiveLink: $('archive-link'),
  gallery: $('gallery'),
  likenessNote: $('likeness-note'),
  intakeError: $('intake-error'),
  dangerZone: $('danger-zone'),
  deleteButton: $('delete-button'),
  deletedSection: $('step-deleted'),
  deletedTitle: $('deleted-title'),
  deletedText: $('deleted-text'),
  receiptLine: $('receipt-line'),
  receipt: $('receipt'),
  newJob: $('new-job'),
  privateLink: $('private-link'),
  linkField: $('private-link-url'),
  copyLink: $('copy-link'),
  rotateLink: $('rotate-link'),
  linkStatus: $('link-status'),
  guide: $('selfie-guide'),
  jobHints: $('job-hints'),
  moreRounds: $('more-rounds'),
  moreError: $('more-error'),
  dialog: $('confirm-delete'),
  confirmOk: $('confirm-ok'),
  confirmCancel: $('confirm-cancel'),
};

export function show(element, visible) {
  element.hidden = !visible;
}

/** Text from anywhere (the API included) goes in as text, never as HTML; a notice shows only with words in it. */
export function setText(element, text) {
  element.textContent = text || '';
  if (element.classList.contains('notice')) show(element, Boolean(text));
}

export function showPickError(message) {
  setText(ui.pickError, message);
}

export function showJobError(message) {
  setText(ui.jobError, message);
}

/** Say something in a live region: cleared first, so that the same words said twice are announced again. */
export function announce(element, message) {
  element.textContent = '';
  if (message) setTimeout(() => { element.textContent = message; }, 50);
}

export function setBusy(button, busy, busyText) {
  if (busy) {
    button.dataset.label = button.textContent;
    button.textContent = busyText;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}
