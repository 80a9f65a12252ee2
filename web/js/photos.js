/* The photo list: choosing photos (checked here before anything is sent), each one's line with its upload
 * state and the API's verdict, and removing them. */

import { api, safeUrl } from './api.js';
import { jobGone } from './deletion.js';
import { announce, setText, show, showPickError, ui } from './dom.js';
import { formatBytes, plural } from './format.js';
import { poll } from './progress.js';
import { state } from './state.js';

export const MIN_FILES = 3;
export const MAX_FILES = 10;
const MAX_BYTES = 30 * 1024 * 1024;
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

let nextKey = 1;

function contentTypeOf(file) {
  const declared = (file.type || '').toLowerCase();
  const type = TYPE_ALIASES[declared] || declared;
  if (ALLOWED_TYPES.has(type)) return type;
  const extension = (file.name.split('.').pop() || '').toLowerCase();
  return TYPES_BY_EXTENSION[extension] || type || '';
}

/** Photos chosen on this page and not yet given to the job. */
export function pendingItems() {
  return state.items.filter((item) => item.file && !item.fileId);
}

function liveServerFiles() {
  return (state.view?.files || []).filter((f) => f.status !== 'refused');
}

export function addFiles(fileList) {
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
  remove.addEventListener('click', () => (item.fileId ? removeUploaded(item) : removeChosen(item)));

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

/** A photo chosen on this page and not uploaded: only the page knows it. */
function removeChosen(item) {
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
export function canRemove(item) {
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
export function setItemState(item, kind, detail = {}) {
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

export function updatePickSummary() {
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

/** The job's files as GET /jobs/{id} shows them: thumbnails, verdicts, and lines for photos this page never had. */
export function renderFiles(view) {
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
export function intakeProblem(view) {
  const error = view?.intake_error;
  return view?.status === 'collecting' && error && typeof error === 'object' && typeof error.code === 'string' ? error : null;
}

/** The photo list and the pick step's messages, as before any job. */
export function resetPhotos() {
  for (const item of state.items) if (item.objectUrl) URL.revokeObjectURL(item.objectUrl);
  state.items = [];
  state.removedFileIds.clear();
  ui.fileList.replaceChildren();
  ui.filesStatus.textContent = '';
  ui.filesTitle.textContent = 'Your photos';
  ui.filesBox.open = true;
  show(ui.uploadRetry, false);
  show(ui.retryButton, true);
  setText(ui.pickError, '');
}
