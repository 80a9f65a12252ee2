/* The API client: JSON calls with the job's token, its errors in its own words, and the links it hands out. */

import { state } from './state.js';

// Set by the deploy step (README "Deploying for real"); empty locally, where the API serves the page.
const API_BASE = (document.querySelector('meta[name="portrait-api-base"]')?.content || '').replace(/\/+$/, '');

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function genericMessage(status) {
  if (status === 0) return 'We could not reach Portrait Studio. Check your connection and try again.';
  if (status === 429) return 'Too many requests. Please wait a moment and try again.';
  if (status >= 500) return 'Something went wrong on our side. Please try again in a moment.';
  return 'The request could not be completed. Please try again.';
}

/** Call the API; resolve to {response, data}; reject with an ApiError carrying the API's own words. */
export async function api(method, path, { body, auth = true } = {}) {
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

/** DELETE a job without waiting for, or caring about, the answer (the page has already moved on). */
export function discardJob(jobId, token) {
  fetch(`${API_BASE}/jobs/${jobId}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` }, credentials: 'omit' }).catch(() => {});
}

function noteServerTime(response) {
  const date = Date.parse(response.headers.get('Date') || '');
  if (!Number.isNaN(date)) {
    const skew = date - Date.now();
    state.skewMs = Math.abs(skew) > 5000 ? skew : 0; // the header has 1 s resolution: ignore jitter
  }
}

/** Only http(s) links from the API ever reach an href or a src. */
export function safeUrl(value) {
  if (typeof value !== 'string' || !value) return null; // never `new URL(null)`: that is ./null
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}
