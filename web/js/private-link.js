/* The job's private link, {origin}/#job=<id>&token=<token>: to come back later, on any browser or device.
 *
 * Both ride in the fragment, never the query string, so no server (nor its logs) ever receives them. Opening it
 * stores them in that tab's sessionStorage, wipes the fragment from the address bar and shows the job. "Make a
 * new link" (POST /jobs/{id}/token) mints a new token; the old one stops working at once. */

import { api, genericMessage } from './api.js';
import { linkDead } from './deletion.js';
import { announce, setBusy, show, showJobError, ui } from './dom.js';
import { loadSession, saveSession, state } from './state.js';

function privateLinkUrl(job) {
  return `${window.location.origin}/#${new URLSearchParams({ job: job.jobId, token: job.token })}`;
}

/** A private link in this page's address (#job=…&token=…), or null. */
export function linkFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  const jobId = fragment.get('job');
  const token = fragment.get('token');
  return jobId && token ? { jobId, token } : null;
}

/** Take the job from a private link into this tab's sessionStorage, and the link off the address bar. */
export function adoptLinkFromFragment() {
  const link = linkFromFragment();
  if (!link) return false;
  const saved = loadSession();
  const job = saved && saved.jobId === link.jobId ? { ...saved, token: link.token } : { jobId: link.jobId, token: link.token, submittedAt: null };
  state.job = job;
  saveSession();
  history.replaceState(null, '', `${window.location.pathname}${window.location.search}`);
  return true;
}

export function renderPrivateLink() {
  const visible = Boolean(state.job) && state.phase !== 'deleted';
  show(ui.privateLink, visible);
  const url = visible ? privateLinkUrl(state.job) : '';
  if (ui.linkField.value !== url) ui.linkField.value = url;
}

export async function copyLink() {
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

export async function rotateLink() {
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

export function resetPrivateLink() {
  state.fromLink = false;
  ui.linkField.value = '';
  ui.linkStatus.textContent = '';
  show(ui.privateLink, false);
}
