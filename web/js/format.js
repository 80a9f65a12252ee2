/* Sizes, times, money and style names as the page writes them. */

const STYLE_NAMES = {
  corporate: 'Corporate',
  business_casual: 'Business casual',
  creative: 'Creative',
  formal: 'Formal',
};

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatElapsed(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(seconds / 60);
  if (minutes === 0) return `${seconds} s`;
  return `${minutes} min ${String(seconds % 60).padStart(2, '0')} s`;
}

export function formatRemaining(ms) {
  const minutes = Math.max(0, Math.floor(ms / 60000));
  const hours = Math.floor(minutes / 60);
  if (hours === 0) return `${minutes} min`;
  return `${hours} h ${minutes % 60} min`;
}

export function formatClock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** Stripe amounts are integers in the currency's minor unit (cents for USD, whole yen for JPY). */
export function formatMoney(amount, currency) {
  const code = String(currency || 'usd').toUpperCase();
  try {
    const format = new Intl.NumberFormat(document.documentElement.lang || 'en', { style: 'currency', currency: code });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(amount / 10 ** digits);
  } catch {
    return `${(amount / 100).toFixed(2)} ${code}`;
  }
}

export function styleName(style) {
  return STYLE_NAMES[style] || style.replace(/_/g, ' ');
}

export function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}
