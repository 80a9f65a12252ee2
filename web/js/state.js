/* What the page knows about the job, shared by every module, and the tab's copy of the job's token. */

const STORAGE_KEY = 'portrait-studio.job';

export const FINISHED = new Set(['ready', 'partial', 'failed', 'deleted', 'expired']);
export const DELIVERED = new Set(['ready', 'partial']); // headshots to show and download

export const state = {
  phase: 'pick', // pick | uploading | watching | replace | interrupted | paying | done | deleted
  job: null, // {jobId, token, submittedAt, awaitingPayment}
  price: null, // GET /price: {amount, currency, images}
  checkoutReturn: null, // 'success' | 'canceled': how Stripe Checkout sent this page back
  returnedAt: 0,
  items: [], // photos on the page: {key, file, name, size, contentType, fileId, ticket, upload, el, objectUrl}
  view: null, // the last GET /jobs/{id}
  skewMs: 0, // server clock minus ours, from the Date header
  lastRefresh: 0, // when the last look at the job succeeded (result links are renewed by looking again)
  moreAsked: null, // the headshot (its alt text) a round of More like this was asked for on this page
  fromLink: false, // opened from a private link and not yet seen to work
  removedFileIds: new Set(), // uploaded photos removed from the job (DELETE …/files/{id}): never shown again
};

/** The server's clock: expiry times come from it. */
export const now = () => Date.now() + state.skewMs;

/* The token lives only in memory and in this tab's sessionStorage (no cookies, nothing in localStorage). */

export function saveSession() {
  if (!state.job) return;
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(state.job));
  } catch {
    /* storage disabled: the job still works while the tab stays open */
  }
}

export function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    if (saved && typeof saved.jobId === 'string' && typeof saved.token === 'string') return saved;
  } catch {
    /* ignore */
  }
  return null;
}

export function clearSession() {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    /* ignore */
  }
}
