/* Portrait Studio: the page. No framework, no build step, nothing loaded from third parties.
 *
 * Flow: choose 3–10 photos → POST /jobs → PUT each file to its presigned URL (XMLHttpRequest, for upload
 * progress) → POST /jobs/{id}/submit → poll GET /jobs/{id} every second: per-file verdicts, then progress
 * per style and results as they land → gallery, "download all" (GET /jobs/{id}/archive), countdown to
 * deletion, "delete everything now" (DELETE /jobs/{id}) and its receipt. If fewer than 3 photos are usable
 * the job goes back to collecting: add replacements (POST /jobs/{id}/files), upload them, submit again.
 * While it collects, photos already checked (accepted or refused) can be removed (DELETE /jobs/{id}/files/{file_id}),
 * e.g. the ones that are not of the person after `no_single_person`.
 *
 * Payment: the price (GET /price) shows before upload. Once the photos are accepted the job waits for payment
 * (awaiting_payment) and the page offers "Pay $12.90", a link to the job's Stripe Checkout page in this same tab.
 * Stripe comes back to /?checkout=success (or =canceled); sessionStorage survives, so the page finds the job
 * again and shows what was paid, the progress, and any refund. An unpaid checkout that expires ends the job.
 *
 * The job's token lives only in memory and in this tab's sessionStorage. All text coming from the API is
 * put on the page with textContent, never as HTML.
 *
 * Private link: once the job exists the page shows {origin}/#job=<id>&token=<token>. Both ride in the fragment,
 * never the query string, so no server (nor its logs) ever receives them. Opening it (any browser, any device)
 * stores them in that tab's sessionStorage, wipes the fragment from the address bar and shows the job. "Make a
 * new link" (POST /jobs/{id}/token) mints a new token; the old one stops working at once.
 */
'use strict';

(() => {
  const API_BASE = (document.querySelector('meta[name="portrait-api-base"]')?.content || '').replace(/\/+$/, '');
  const MIN_FILES = 3;
  const MAX_FILES = 10;
  const MAX_BYTES = 30 * 1024 * 1024;
  const POLL_MS = 2000; // each look is an API call, a Lambda invocation and a few DynamoDB reads
  const IDLE_POLL_MS = 5000; // while the job waits for replacement photos
  const READY_REFRESH_MS = 30 * 60 * 1000; // result links live 1 h: renew them well before
  const PARALLEL_UPLOADS = 3;
  const STORAGE_KEY = 'portrait-studio.job';
  const STYLE_NAMES = {
    corporate: 'Corporate',
    business_casual: 'Business casual',
    creative: 'Creative',
    formal: 'Formal',
  };
  const TYPES_BY_EXTENSION = {
    jpg: 'image/jpeg',
    jpeg: 'image/jpeg',
    jfif: 'image/jpeg',
    png: 'image/png',
    webp: 'image/webp',
    heic: 'image/heic',
    heif: 'image/heif',
    avif: 'image/avif',
  };
  const TYPE_ALIASES = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg', 'image/x-png': 'image/png' };
  const ALLOWED_TYPES = new Set(Object.values(TYPES_BY_EXTENSION));
  // HEIC/HEIF: most browsers cannot show them, so the page shows the name and size instead.
  const PREVIEWABLE_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif']);
  const REFUND_POLL_MS = 15000; // a finished job whose refund is still on its way
  const CONFIRM_WAIT_MS = 2 * 60 * 1000; // back from checkout: Stripe's event should reach us well within this
  const FINISHED = new Set(['ready', 'partial', 'failed', 'deleted', 'expired']);
  const DELIVERED = new Set(['ready', 'partial']); // headshots to show and download

  const $ = (id) => document.getElementById(id);
  const ui = {
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

  /* ---------------------------------------------------------------- state */

  let nextKey = 1;
  const state = {
    phase: 'pick', // pick | uploading | watching | replace | interrupted | paying | done | deleted
    job: null, // {jobId, token, submittedAt, awaitingPayment}
    price: null, // GET /price: {amount, currency, images}
    checkoutReturn: null, // 'success' | 'canceled': how Stripe Checkout sent this page back
    returnedAt: 0,
    items: [], // photos on the page: {key, file, name, size, contentType, fileId, ticket, upload, el, objectUrl}
    view: null, // the last GET /jobs/{id}
    pollTimer: null,
    tickTimer: null,
    countdownTimer: null,
    pollFailures: 0,
    skewMs: 0, // server clock minus ours, from the Date header
    gallery: new Map(), // result path → {li, img, link, url}
    styleGroups: new Map(), // style → {section, list, count}
    lastRefresh: 0,
    moreAsked: null, // the headshot (its alt text) a round of More like this was asked for on this page
    moreSeenStatus: '', // the job's status at the last look, to notice a round being delivered
    fromLink: false, // opened from a private link and not yet seen to work
    removedFileIds: new Set(), // uploaded photos removed from the job (DELETE …/files/{id}): never shown again
  };

  /* ---------------------------------------------------------------- helpers */

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function genericMessage(status) {
    if (status === 0) return 'We could not reach Portrait Studio. Check your connection and try again.';
    if (status === 429) return 'Too many requests. Please wait a moment and try again.';
    if (status >= 500) return 'Something went wrong on our side. Please try again in a moment.';
    return 'The request could not be completed. Please try again.';
  }

  /** Call the API; resolve to {response, data}; reject with an ApiError carrying the API's own words. */
  async function api(method, path, { body, auth = true } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && state.job) headers.Authorization = `Bearer ${state.job.token}`;
    let response;
    try {
      response = await fetch(API_BASE + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(genericMessage(0), 0, 'network');
    }
    noteServerTime(response);
    let data = null;
    if (response.status !== 204) {
      try {
        const text = await response.text();
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && typeof data === 'object' && data.error && typeof data.error.message === 'string' ? data.error : null;
      throw new ApiError(error ? error.message : genericMessage(response.status), response.status, error ? error.code : `http_${response.status}`);
    }
    return { response, data };
  }

  function noteServerTime(response) {
    const date = Date.parse(response.headers.get('Date') || '');
    if (!Number.isNaN(date)) {
      const skew = date - Date.now();
      state.skewMs = Math.abs(skew) > 5000 ? skew : 0; // the header has 1 s resolution: ignore jitter
    }
  }

  const now = () => Date.now() + state.skewMs;

  /** Only http(s) links from the API ever reach an href or a src. */
  function safeUrl(value) {
    if (typeof value !== 'string' || !value) return null; // never `new URL(null)`: that is ./null
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch {
      return null;
    }
  }

  function urlPath(value) {
    try {
      const url = new URL(value);
      return url.origin + url.pathname;
    } catch {
      return value;
    }
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  function formatElapsed(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const minutes = Math.floor(seconds / 60);
    if (minutes === 0) return `${seconds} s`;
    return `${minutes} min ${String(seconds % 60).padStart(2, '0')} s`;
  }

  function formatRemaining(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    const hours = Math.floor(minutes / 60);
    if (hours === 0) return `${minutes} min`;
    return `${hours} h ${minutes % 60} min`;
  }

  function styleName(style) {
    return STYLE_NAMES[style] || style.replace(/_/g, ' ');
  }

  function plural(count, one, many) {
    return `${count} ${count === 1 ? one : many}`;
  }

  /** Stripe amounts are integers in the currency's minor unit (cents for USD, whole yen for JPY). */
  function formatMoney(amount, currency) {
    const code = String(currency || 'usd').toUpperCase();
    try {
      const format = new Intl.NumberFormat(document.documentElement.lang || 'en', { style: 'currency', currency: code });
      const digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / 10 ** digits);
    } catch {
      return `${(amount / 100).toFixed(2)} ${code}`;
    }
  }

  function formatClock(ms) {
    return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  }

  function contentTypeOf(file) {
    const declared = (file.type || '').toLowerCase();
    const type = TYPE_ALIASES[declared] || declared;
    if (ALLOWED_TYPES.has(type)) return type;
    const extension = (file.name.split('.').pop() || '').toLowerCase();
    return TYPES_BY_EXTENSION[extension] || type || '';
  }

  function show(element, visible) {
    element.hidden = !visible;
  }

  function setText(element, text) {
    element.textContent = text || '';
    if (element.classList.contains('notice')) show(element, Boolean(text));
  }

  function showPickError(message) {
    setText(ui.pickError, message);
  }

  function showJobError(message) {
    setText(ui.jobError, message);
  }

  /** Say something in a live region: cleared first, so that the same words said twice are announced again. */
  function announce(element, message) {
    element.textContent = '';
    if (message) setTimeout(() => { element.textContent = message; }, 50);
  }

  /* ---------------------------------------------------------------- session (this tab only) */

  function saveSession() {
    if (!state.job) return;
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(state.job));
    } catch {
      /* storage disabled: the job still works while the tab stays open */
    }
  }

  function loadSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
      if (saved && typeof saved.jobId === 'string' && typeof saved.token === 'string') return saved;
    } catch {
      /* ignore */
    }
    return null;
  }

  function clearSession() {
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      /* ignore */
    }
  }

  /* ---------------------------------------------------------------- photo list */

  function pendingItems() {
    return state.items.filter((item) => item.file && !item.fileId);
  }

  function liveServerFiles() {
    return (state.view?.files || []).filter((f) => f.status !== 'refused');
  }

  function addFiles(fileList) {
    if (state.phase !== 'pick' && state.phase !== 'replace') return;
    showPickError('');
    const refused = [];
    const limit = state.phase === 'replace' ? MAX_FILES - liveServerFiles().length : MAX_FILES;
    let skippedForCount = 0;
    for (const file of Array.from(fileList)) {
      const duplicate = state.items.some(
        (item) => item.file && item.file.name === file.name && item.file.size === file.size && item.file.lastModified === file.lastModified,
      );
      if (duplicate) continue;
      const contentType = contentTypeOf(file);
      if (!ALLOWED_TYPES.has(contentType)) {
        refused.push(`${file.name}: this type of file is not accepted. Use JPEG, PNG, WebP, HEIC or AVIF.`);
        continue;
      }
      if (file.size === 0) {
        refused.push(`${file.name}: the file is empty.`);
        continue;
      }
      if (file.size > MAX_BYTES) {
        refused.push(`${file.name}: the photo is larger than 30 MB.`);
        continue;
      }
      if (pendingItems().length >= limit) {
        skippedForCount += 1;
        continue;
      }
      const item = {
        key: `local-${nextKey++}`,
        file,
        name: file.name,
        size: file.size,
        contentType,
        fileId: null,
        ticket: null,
        upload: 'pending',
        el: null,
        objectUrl: null,
      };
      state.items.push(item);
      ui.fileList.append(buildItem(item));
    }
    if (skippedForCount) refused.push(`At most ${MAX_FILES} photos can be used: ${plural(skippedForCount, 'photo was', 'photos were')} not added.`);
    if (refused.length) showPickError(refused.join(' '));
    updatePickSummary();
  }

  function buildItem(item) {
    const li = document.createElement('li');
    li.className = 'file';
    li.dataset.key = item.key;

    const thumb = document.createElement('div');
    thumb.className = 'thumb';
    if (item.file && PREVIEWABLE_TYPES.has(item.contentType)) {
      item.objectUrl = URL.createObjectURL(item.file);
      const img = document.createElement('img');
      img.src = item.objectUrl;
      img.alt = `Preview of ${item.name}`;
      img.decoding = 'async';
      img.addEventListener('error', () => {
        img.remove();
        thumb.append(placeholder(item));
      });
      thumb.append(img);
    } else {
      thumb.append(placeholder(item));
    }

    const body = document.createElement('div');
    body.className = 'file-body';
    const name = document.createElement('p');
    name.className = 'file-name';
    name.textContent = item.name;
    const meta = document.createElement('p');
    meta.className = 'file-meta';
    meta.textContent = describeFile(item);
    const progress = document.createElement('progress');
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute('aria-label', `Upload of ${item.name}`);
    progress.hidden = true;
    const status = document.createElement('p');
    status.className = 'file-status';
    const hint = document.createElement('p');
    hint.className = 'file-hint';
    hint.hidden = true;
    body.append(name, meta, progress, status, hint);

    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'button button-small button-secondary remove';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove ${item.name}`);
    remove.addEventListener('click', () => (item.fileId ? removeUploaded(item) : removeItem(item)));

    li.append(thumb, body, remove);
    item.el = { li, progress, status, hint, remove };
    setItemState(item, item.fileId ? 'uploaded' : 'chosen');
    return li;
  }

  function placeholder(item) {
    const box = document.createElement('span');
    box.className = 'thumb-placeholder';
    box.setAttribute('aria-hidden', 'true');
    const extension = (item.name.split('.').pop() || '').toUpperCase();
    box.textContent = extension.length <= 5 ? extension : 'PHOTO';
    return box;
  }

  function describeFile(item) {
    const parts = [];
    if (item.size) parts.push(formatBytes(item.size));
    if (item.contentType === 'image/heic' || item.contentType === 'image/heif') parts.push('HEIC photo (no preview in the browser)');
    return parts.join(' · ');
  }

  function removeItem(item) {
    dropItem(item);
    updatePickSummary();
    ui.fileInput.focus();
  }

  function dropItem(item) {
    state.items = state.items.filter((other) => other !== item);
    if (item.objectUrl) URL.revokeObjectURL(item.objectUrl);
    item.el?.li.remove();
  }

  /** Can this photo's line offer "Remove"? Chosen ones while choosing; uploaded ones that were checked
   * (accepted or refused) while the job is collecting (DELETE /jobs/{id}/files/{file_id}). */
  function canRemove(item) {
    if (!item.fileId) return state.phase === 'pick' || state.phase === 'replace';
    return (
      state.phase === 'replace' &&
      state.view?.status === 'collecting' &&
      (item.verdict === 'accepted' || item.verdict === 'refused')
    );
  }

  /** Remove an uploaded photo from the job (e.g. not of you, after no_single_person). */
  async function removeUploaded(item) {
    if (!state.job || !canRemove(item) || item.removing) return;
    const jobId = state.job.jobId;
    const { remove } = item.el;
    showPickError('');
    item.removing = true;
    remove.disabled = true;
    remove.setAttribute('aria-busy', 'true');
    remove.textContent = 'Removing…';
    try {
      await api('DELETE', `/jobs/${jobId}/files/${encodeURIComponent(item.fileId)}`);
    } catch (error) {
      item.removing = false;
      remove.disabled = false;
      remove.removeAttribute('aria-busy');
      remove.textContent = 'Remove';
      if (state.job?.jobId !== jobId) return;
      if (error.status === 404 || error.status === 410) {
        jobGone();
        return;
      }
      showPickError(error.message);
      remove.focus();
      if (error.status === 409) poll(); // the job moved on (being checked): show where it is
      return;
    }
    if (state.job?.jobId !== jobId) return;
    state.removedFileIds.add(item.fileId);
    // Where the focus goes once the line is gone: the next photo's Remove, else the previous one's, else "Choose photos".
    const rows = state.items.filter((other) => other.el && !other.el.remove.hidden);
    const index = rows.indexOf(item);
    const next = rows[index + 1] || rows[index - 1];
    dropItem(item);
    if (state.view) {
      state.view = {
        ...state.view,
        files: state.view.files.filter((f) => f.file_id !== item.fileId),
        usable_files: Math.max(0, (state.view.usable_files || 0) - (item.verdict === 'accepted' ? 1 : 0)),
      };
      renderFileCounts(state.view);
    }
    updatePickSummary();
    if (next?.el) next.el.remove.focus();
    else ui.fileInput.focus();
    announce(ui.filesStatus, `${item.name} removed.`);
    poll(); // the job as the API now sees it
  }

  /** One place that says what a photo's line shows. */
  function setItemState(item, kind, detail = {}) {
    const { li, progress, status, hint, remove } = item.el;
    li.dataset.state = kind;
    remove.hidden = !canRemove(item);
    progress.hidden = !(kind === 'uploading' || kind === 'uploaded' || kind === 'upload-failed');
    hint.hidden = true;
    switch (kind) {
      case 'chosen':
        status.textContent = 'Ready to upload';
        break;
      case 'uploading':
        status.textContent = `Uploading… ${Math.round((detail.fraction || 0) * 100)} %`;
        break;
      case 'uploaded':
        progress.value = 100;
        status.textContent = 'Uploaded';
        break;
      case 'upload-failed':
        status.textContent = `Upload failed: ${detail.message}`;
        break;
      case 'queued':
        status.textContent = 'Checking this photo…';
        break;
      case 'waiting':
        status.textContent = 'Waiting for the upload';
        break;
      case 'accepted':
        status.textContent = `Accepted${detail.message ? `: ${detail.message}` : ''}`;
        break;
      case 'refused':
        status.textContent = `Refused: ${detail.message || 'this photo cannot be used.'}`;
        if (detail.hint) {
          hint.textContent = detail.hint;
          hint.hidden = false;
        }
        break;
      default:
        status.textContent = '';
    }
  }

  function updatePickSummary() {
    const count = pendingItems().length;
    show(ui.filesBox, state.items.length > 0);
    if (state.phase === 'replace') {
      const usable = state.view?.usable_files || 0;
      const need = Math.max(0, MIN_FILES - usable);
      if (intakeProblem(state.view)) {
        ui.pickSummary.textContent = count
          ? `${plural(count, 'new photo', 'new photos')} of yourself chosen.`
          : 'Add photos of yourself only, then submit again.';
        return;
      }
      ui.pickSummary.textContent = count
        ? `${plural(count, 'replacement photo', 'replacement photos')} chosen.${count < need ? ` Add at least ${need - count} more.` : ''}`
        : `Add at least ${plural(need, 'photo', 'photos')}.`;
      return;
    }
    if (state.phase !== 'pick') {
      ui.pickSummary.textContent = '';
      return;
    }
    if (count === 0) ui.pickSummary.textContent = '';
    else if (count < MIN_FILES) ui.pickSummary.textContent = `${plural(count, 'photo', 'photos')} chosen: add at least ${MIN_FILES - count} more.`;
    else ui.pickSummary.textContent = `${count} photos chosen.`;
  }

  /* ---------------------------------------------------------------- phases */

  function setPhase(phase) {
    state.phase = phase;
    const choosing = phase === 'pick' || phase === 'replace';
    show(ui.dropzone, choosing);
    show(ui.guide, choosing); // the selfie guide matters while photos are being chosen, not afterwards
    ui.pickTitle.textContent =
      phase === 'pick' ? '1. Choose your photos' : phase === 'replace' ? '1. Add more photos' : '1. Your photos';
    show(ui.options, phase === 'pick');
    show(ui.replacePanel, phase === 'replace');
    ui.dropzoneLead.textContent =
      phase === 'replace' ? 'Add replacement photos: drag them here, or' : 'Drag 3–10 photos of yourself here, or';
    ui.fileInput.value = '';
    show(ui.jobSection, Boolean(state.job) && phase !== 'deleted');
    show(ui.dangerZone, Boolean(state.job) && phase !== 'deleted' && phase !== 'uploading');
    show(ui.pickSection, phase !== 'deleted');
    show(ui.deletedSection, phase === 'deleted');
    for (const item of state.items) if (item.el) item.el.remove.hidden = !canRemove(item);
    updatePickSummary();
    renderPrivateLink();
  }

  function setBusy(button, busy, busyText) {
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

  /* ---------------------------------------------------------------- create, upload, submit */

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

  function fileSpec(item) {
    return { name: item.name, content_type: item.contentType, bytes: item.size };
  }

  ui.backdropColor.addEventListener('input', () => {
    const solid = document.querySelector('input[name="backdrop"][value="solid"]');
    if (solid) solid.checked = true;
  });

  async function startJob() {
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

  async function addReplacements() {
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

  async function uploadAll(items) {
    const queue = items.filter((item) => item.upload !== 'done');
    const worker = async () => {
      while (queue.length) await uploadOne(queue.shift());
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
    return items.filter((item) => item.upload !== 'done');
  }

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

  async function retryUploads() {
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

  /* ---------------------------------------------------------------- polling and rendering */

  function schedulePoll(ms) {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    clearTimeout(state.pollTimer);
    if (!state.job) return;
    const jobId = state.job.jobId;
    const token = state.job.token;
    try {
      const { data } = await api('GET', `/jobs/${jobId}`);
      if (state.job?.jobId !== jobId) return;
      state.fromLink = false;
      state.pollFailures = 0;
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
      state.pollFailures += 1;
      // One failed look is not worth a word; a run of them is.
      if (state.pollFailures >= 3) showJobError(`${error.message} Still trying…`);
    }
    if (!state.job || state.phase === 'deleted') return;
    const status = state.view?.status;
    if (state.view?.refund?.status === 'pending' && FINISHED.has(status)) schedulePoll(REFUND_POLL_MS);
    else if (DELIVERED.has(status)) schedulePoll(READY_REFRESH_MS);
    else if (status === 'awaiting_payment' && state.view.checkout_url && !confirmingPayment(state.view)) schedulePoll(IDLE_POLL_MS);
    else if (FINISHED.has(status)) clearTimeout(state.pollTimer);
    else if (state.phase === 'uploading') clearTimeout(state.pollTimer);
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

  function renderFiles(view) {
    const byId = new Map(state.items.filter((item) => item.fileId).map((item) => [item.fileId, item]));
    for (const file of view.files) {
      if (state.removedFileIds.has(file.file_id)) continue; // a look that left before the removal
      let item = byId.get(file.file_id);
      if (!item) {
        // Known to the server but not to this page (it was reloaded): show what the API says.
        item = { key: `server-${file.file_id}`, file: null, name: file.name, size: 0, contentType: '', fileId: file.file_id, upload: 'done', el: null };
        state.items.push(item);
        ui.fileList.append(buildItem(item));
      }
      if (file.thumbnail_url && !item.objectUrl && !item.el.li.querySelector('.thumb img')) {
        const url = safeUrl(file.thumbnail_url);
        if (url) {
          const img = document.createElement('img');
          img.src = url;
          img.alt = `Preview of ${item.name} as we will use it`;
          item.el.li.querySelector('.thumb').replaceChildren(img);
        }
      }
      item.verdict = file.status;
      if (file.code) item.el.li.dataset.code = file.code; // e.g. different_person: somebody else's photo
      else delete item.el.li.dataset.code;
      if (file.status === 'accepted') setItemState(item, 'accepted', { message: file.message });
      else if (file.status === 'refused') setItemState(item, 'refused', { message: file.message, hint: file.hint });
      else if (file.status === 'queued') setItemState(item, 'queued');
      else if (file.status === 'awaiting_upload' && item.upload !== 'uploading' && item.upload !== 'failed') {
        setItemState(item, item.upload === 'done' ? 'uploaded' : 'waiting');
      }
    }
    show(ui.filesBox, state.items.length > 0);
    renderFileCounts(view);
  }

  function renderFileCounts(view) {
    const files = view.files.filter((f) => !state.removedFileIds.has(f.file_id));
    const usable = files.filter((f) => f.status === 'accepted').length;
    const refused = files.filter((f) => f.status === 'refused').length;
    ui.filesTitle.textContent =
      usable || refused ? `Your photos: ${usable} usable${refused ? `, ${refused} refused` : ''}` : 'Your photos';
  }

  /** Why the job came back to collecting when no single photo was at fault (e.g. no_single_person). */
  function intakeProblem(view) {
    const error = view?.intake_error;
    return view?.status === 'collecting' && error && typeof error === 'object' && typeof error.code === 'string' ? error : null;
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
        if (!state.tickTimer) startTicking();
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

  /* ---------------------------------------------------------------- price, payment, refund */

  async function loadPrice() {
    try {
      const { data } = await api('GET', '/price', { auth: false });
      if (data && Number.isInteger(data.amount) && typeof data.currency === 'string') state.price = data;
    } catch {
      state.price = null;
    }
    renderPrice();
  }

  function priceText() {
    return state.price ? formatMoney(state.price.amount, state.price.currency) : '';
  }

  function renderPrice() {
    if (state.price) {
      const images = state.price.images ? `${state.price.images} headshots` : 'Your headshots';
      ui.priceLine.textContent = `${images} for ${priceText()}. You pay only after your photos are checked; promotion codes are accepted at checkout.`;
    } else {
      ui.priceLine.textContent = 'You pay only after your photos are checked.';
    }
    show(ui.priceLine, true);
    ui.payLink.textContent = state.price ? `Pay ${priceText()}` : 'Pay and start';
  }

  /** Back from Stripe with ?checkout=success while its event is still on the way to us. */
  function confirmingPayment(view) {
    return view.status === 'awaiting_payment' && state.checkoutReturn === 'success' && Date.now() - state.returnedAt < CONFIRM_WAIT_MS;
  }

  function checkoutClosed(view) {
    const closes = Date.parse(view.checkout_expires_at || '');
    return view.status === 'awaiting_payment' && !Number.isNaN(closes) && closes <= now();
  }

  function focusPayLinkSoon() {
    requestAnimationFrame(() => {
      if (!ui.payLink.hidden) ui.payLink.focus();
      else if (!ui.payPreparing.hidden) ui.jobTitle.focus();
    });
  }

  function renderBackdrop(view) {
    const backdrop = view.backdrop;
    const text = backdrop ? `Backdrop: ${backdrop.label}${backdrop.color ? ` (${backdrop.color})` : ''}.` : '';
    if (ui.backdropLine.textContent !== text) ui.backdropLine.textContent = text;
    show(ui.backdropLine, Boolean(text));
    ui.backdropLine.dataset.kind = backdrop ? backdrop.kind : '';
  }

  function renderPayment(view) {
    const awaiting = view.status === 'awaiting_payment';
    if (state.job && Boolean(state.job.awaitingPayment) !== awaiting) {
      state.job.awaitingPayment = awaiting; // so that a job that vanishes while unpaid reads as an expired checkout
      saveSession();
    }
    const confirming = confirmingPayment(view);
    const closed = checkoutClosed(view);
    const url = awaiting ? safeUrl(view.checkout_url) : null;
    show(ui.payPanel, awaiting && !confirming && !closed);
    if (url) ui.payLink.href = url;
    else ui.payLink.removeAttribute('href');
    show(ui.payLink, Boolean(url));
    show(ui.payPreparing, awaiting && !url);
    const canceled = awaiting && state.checkoutReturn === 'canceled';
    setText(ui.payNote, canceled ? 'You left checkout without paying: nothing was charged. Pay when you are ready.' : '');

    const paid = view.payment;
    let paidText = '';
    if (paid && Number.isInteger(paid.amount_total)) {
      paidText = `Paid ${formatMoney(paid.amount_total, paid.currency)}`;
      if (paid.amount_discount > 0) paidText += ` (${formatMoney(paid.amount_discount, paid.currency)} off with a promotion code)`;
      paidText += '.';
    }
    if (ui.paymentLine.textContent !== paidText) ui.paymentLine.textContent = paidText;
    show(ui.paymentLine, Boolean(paidText));

    const refundText = describeRefund(view);
    if (ui.refundLine.textContent !== refundText) ui.refundLine.textContent = refundText;
    show(ui.refundLine, Boolean(refundText));
  }

  function describeRefund(view) {
    const refund = view.refund;
    if (!refund || !Number.isInteger(refund.amount) || refund.amount <= 0) return '';
    const amount = formatMoney(refund.amount, refund.currency);
    let because = '';
    if (refund.reason === 'partial') because = ` because only ${view.images_done} of ${view.images_expected} headshots could be made`;
    else if (refund.reason === 'failed') because = ' because we could not make your headshots';
    else if (refund.reason === 'deleted') because = ' because the job was deleted before any headshot was made';
    if (refund.status === 'refunded') {
      const when = Date.parse(refund.refunded_at || '');
      const on = Number.isNaN(when) ? '' : ` on ${new Date(when).toLocaleDateString(undefined, { day: 'numeric', month: 'short' })}`;
      return `${amount} refunded${on}${because}. It can take 5–10 days to show on your statement.`;
    }
    return `Refund of ${amount} on its way${because}.`;
  }

  // The server's estimate (measured prediction times, place in the create line), in whole minutes.
  function readyIn(view) {
    if (!view.estimated_ready_at) return '';
    const minutes = Math.ceil((Date.parse(view.estimated_ready_at) - Date.now()) / 60000);
    return minutes <= 1 ? ' Ready in about a minute.' : ` Ready in about ${minutes} minutes.`;
  }

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

  function renderGallery(view) {
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
        let entry = state.gallery.get(key);
        if (!entry) {
          entry = buildResult(style.style, index + 1, url);
          state.gallery.set(key, entry);
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
    let group = state.styleGroups.get(style);
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
    state.styleGroups.set(style, group);
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

  /* ---------------------------------------------------------------- hints and More like this */

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

  /** The rounds left, and a button on each headshot while a round can still be asked for. */
  function renderMore(view) {
    const delivered = DELIVERED.has(view.status);
    const left = Number.isInteger(view.more_rounds_left) ? Math.max(0, view.more_rounds_left) : 0;
    const offered = delivered && left > 0;
    if (delivered) state.moreAsked = null; // the round, if any, is delivered
    // A refusal stays beside the gallery until the job is delivered again (then it no longer holds).
    if (delivered && state.moreSeenStatus && !DELIVERED.has(state.moreSeenStatus)) setText(ui.moreError, '');
    state.moreSeenStatus = view.status;
    for (const entry of state.gallery.values()) {
      const usable = offered && Boolean(entry.resultId);
      show(entry.moreButton, usable);
      if (!usable) entry.moreButton.disabled = true;
      else if (entry.moreButton.getAttribute('aria-busy') !== 'true') entry.moreButton.disabled = false;
    }
    let text = '';
    if (offered) {
      text = `More like this: ${plural(left, 'round', 'rounds')} left. Each makes 4 more headshots like the one you pick.`;
    } else if (delivered && state.gallery.size) {
      text = 'You have used every round of More like this for this job.';
    }
    if (ui.moreRounds.textContent !== text) ui.moreRounds.textContent = text;
    show(ui.moreRounds, Boolean(text));
  }

  async function askMore(entry) {
    if (!state.job || !entry.resultId) return;
    setText(ui.moreError, '');
    for (const other of state.gallery.values()) other.moreButton.disabled = true; // one round at a time
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

  async function downloadAll() {
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

  /* ---------------------------------------------------------------- clocks */

  function startTicking() {
    stopTicking();
    state.tickTimer = setInterval(tick, 1000);
  }

  function stopTicking() {
    clearInterval(state.tickTimer);
    state.tickTimer = null;
  }

  function startCountdown() {
    clearInterval(state.countdownTimer);
    state.countdownTimer = setInterval(tick, 30000);
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

  /* ---------------------------------------------------------------- private link */

  /** The job's private link: id and token in the fragment (never sent to any server, so in no log). */
  function privateLinkUrl(job) {
    return `${window.location.origin}/#${new URLSearchParams({ job: job.jobId, token: job.token })}`;
  }

  /** A private link in this page's address (#job=…&token=…), or null. */
  function linkFromFragment() {
    const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    const jobId = fragment.get('job');
    const token = fragment.get('token');
    return jobId && token ? { jobId, token } : null;
  }

  /** Take the job from a private link into this tab's sessionStorage, and the link off the address bar. */
  function adoptLinkFromFragment() {
    const link = linkFromFragment();
    if (!link) return false;
    const saved = loadSession();
    const job = saved && saved.jobId === link.jobId ? { ...saved, token: link.token } : { jobId: link.jobId, token: link.token, submittedAt: null };
    state.job = job;
    saveSession();
    history.replaceState(null, '', `${window.location.pathname}${window.location.search}`);
    return true;
  }

  function renderPrivateLink() {
    const visible = Boolean(state.job) && state.phase !== 'deleted';
    show(ui.privateLink, visible);
    const url = visible ? privateLinkUrl(state.job) : '';
    if (ui.linkField.value !== url) ui.linkField.value = url;
  }

  async function copyLink() {
    const text = ui.linkField.value;
    if (!text) return;
    let copied = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        copied = true;
      }
    } catch {
      copied = false;
    }
    if (!copied) {
      // No clipboard access: select the link so that it can be copied by hand (or by the old copy command).
      ui.linkField.focus();
      ui.linkField.select();
      ui.linkField.setSelectionRange(0, text.length);
      try {
        copied = document.execCommand('copy');
      } catch {
        copied = false;
      }
      if (copied) ui.copyLink.focus();
    }
    announce(ui.linkStatus, copied ? 'Link copied.' : 'The link is selected: copy it with Ctrl+C (⌘C on a Mac), or long-press on a phone.');
  }

  async function rotateLink() {
    if (!state.job) return;
    const jobId = state.job.jobId;
    showJobError('');
    announce(ui.linkStatus, '');
    setBusy(ui.rotateLink, true, 'Making a new link…');
    let data;
    try {
      ({ data } = await api('POST', `/jobs/${jobId}/token`));
    } catch (error) {
      setBusy(ui.rotateLink, false);
      if (state.job?.jobId !== jobId) return;
      if (error.status === 404) linkDead();
      else showJobError(error.message);
      return;
    }
    setBusy(ui.rotateLink, false);
    if (state.job?.jobId !== jobId) return;
    if (!data || typeof data.token !== 'string' || !data.token) {
      showJobError(genericMessage(500));
      return;
    }
    state.job.token = data.token;
    saveSession();
    renderPrivateLink();
    ui.rotateLink.focus();
    announce(ui.linkStatus, 'New link made: the old one no longer works. Copy this one to come back later.');
  }

  /** Our token no longer opens the job: deleted, expired, or a new link was made for it somewhere else. */
  function linkDead() {
    showEnd(
      'This link no longer works',
      'The job was deleted or its 48 hours are over, or a new private link was made for it on another device or tab ' +
        '(the old link stops working at once). If you made a new link, open that one.',
    );
  }

  /* ---------------------------------------------------------------- delete, reset */

  function askDelete() {
    if (typeof ui.dialog.showModal === 'function') ui.dialog.showModal();
    else if (window.confirm('Delete your photos and all your headshots now? This cannot be undone.')) deleteJob();
  }

  async function deleteJob() {
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

  function jobGone() {
    showEnd(
      'This job is gone',
      'It was deleted, its 48 hours are over, or a new private link was made for it (the old one stops working at once). Nothing of a deleted job is kept.',
    );
  }

  /** The job vanished while it waited for payment: its checkout expired and its photos were deleted. */
  function checkoutExpired() {
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
    clearTimeout(state.pollTimer);
    stopTicking();
    clearInterval(state.countdownTimer);
    clearSession();
    state.job = null;
    state.view = null;
    for (const item of state.items) if (item.objectUrl) URL.revokeObjectURL(item.objectUrl);
    state.items = [];
    state.gallery.clear();
    state.styleGroups.clear();
    state.removedFileIds.clear();
    ui.fileList.replaceChildren();
    ui.filesStatus.textContent = '';
    ui.filesTitle.textContent = 'Your photos';
    ui.filesBox.open = true;
    ui.gallery.replaceChildren();
    ui.styleProgress.replaceChildren();
    ui.archiveLink.removeAttribute('href');
    show(ui.archiveLink, false);
    show(ui.uploadRetry, false);
    show(ui.retryButton, true);
    setText(ui.jobMessage, '');
    setText(ui.intakeError, '');
    show(ui.likenessNote, false);
    state.moreAsked = null;
    state.moreSeenStatus = '';
    setText(ui.moreError, '');
    ui.moreRounds.textContent = '';
    show(ui.moreRounds, false);
    delete ui.jobHints.dataset.key;
    ui.jobHints.replaceChildren();
    show(ui.jobHints, false);
    setText(ui.payNote, '');
    show(ui.payPanel, false);
    ui.payLink.removeAttribute('href');
    ui.paymentLine.textContent = '';
    ui.refundLine.textContent = '';
    ui.backdropLine.textContent = '';
    show(ui.backdropLine, false);
    show(ui.paymentLine, false);
    show(ui.refundLine, false);
    state.checkoutReturn = null;
    setText(ui.jobError, '');
    setText(ui.pickError, '');
    ui.jobStatus.textContent = '';
    show(ui.countdown, false);
    state.fromLink = false;
    ui.linkField.value = '';
    ui.linkStatus.textContent = '';
    show(ui.privateLink, false);
  }

  function startOver() {
    if (state.job) {
      const token = state.job.token;
      const jobId = state.job.jobId;
      // Delete the unfinished job too: nothing of it should wait 48 hours.
      fetch(`${API_BASE}/jobs/${jobId}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` }, credentials: 'omit' }).catch(() => {});
    }
    resetToPick();
  }

  function resetToPick() {
    forgetJob();
    setPhase('pick');
    ui.fileInput.focus();
  }

  /* ---------------------------------------------------------------- events */

  ui.fileInput.addEventListener('change', () => {
    addFiles(ui.fileInput.files);
    ui.fileInput.value = '';
  });

  let dragDepth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes('Files');
  document.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    if (state.phase === 'pick' || state.phase === 'replace') ui.dropzone.classList.add('dragging');
  });
  document.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault(); // never let the browser open a dropped photo instead of the page
    event.dataTransfer.dropEffect = state.phase === 'pick' || state.phase === 'replace' ? 'copy' : 'none';
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

  // Stripe Checkout sends the person back to /?checkout=success or /?checkout=canceled: note it, tidy the address.
  const params = new URLSearchParams(window.location.search);
  if (params.has('checkout')) {
    const back = params.get('checkout');
    state.checkoutReturn = back === 'success' || back === 'canceled' ? back : null;
    state.returnedAt = Date.now();
    params.delete('checkout');
    const query = params.toString();
    history.replaceState(null, '', `${window.location.pathname}${query ? `?${query}` : ''}${window.location.hash}`);
  }

  // A private link (#job=…&token=…): it names the job to show, whatever this tab had before.
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
})();
