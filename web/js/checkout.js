/* The price, paying on Stripe Checkout, and what was paid and refunded.
 *
 * Once the photos are accepted the job waits for payment (awaiting_payment) and the page offers "Pay $12.90", a
 * link to the job's Checkout page in this same tab. Stripe comes back to /?checkout=success (or =canceled);
 * sessionStorage survives, so the page finds the job again. An unpaid checkout that expires ends the job. */

import { api, safeUrl } from './api.js';
import { setText, show, ui } from './dom.js';
import { formatMoney } from './format.js';
import { now, saveSession, state } from './state.js';

const CONFIRM_WAIT_MS = 2 * 60 * 1000; // back from checkout: Stripe's event should reach us well within this

/** Stripe sends the person back to /?checkout=success or /?checkout=canceled: note it, tidy the address. */
export function noteCheckoutReturn() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('checkout')) return;
  const back = params.get('checkout');
  state.checkoutReturn = back === 'success' || back === 'canceled' ? back : null;
  state.returnedAt = Date.now();
  params.delete('checkout');
  const query = params.toString();
  history.replaceState(null, '', `${window.location.pathname}${query ? `?${query}` : ''}${window.location.hash}`);
}

export async function loadPrice() {
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

export function renderPrice() {
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
export function confirmingPayment(view) {
  return view.status === 'awaiting_payment' && state.checkoutReturn === 'success' && Date.now() - state.returnedAt < CONFIRM_WAIT_MS;
}

export function checkoutClosed(view) {
  const closes = Date.parse(view.checkout_expires_at || '');
  return view.status === 'awaiting_payment' && !Number.isNaN(closes) && closes <= now();
}

/** Photos just accepted on this page: the next step is to pay (or, with no checkout yet, to read why not). */
export function focusPayLinkSoon() {
  requestAnimationFrame(() => {
    if (!ui.payLink.hidden) ui.payLink.focus();
    else if (!ui.payPreparing.hidden) ui.jobTitle.focus();
  });
}

export function renderPayment(view) {
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

export function resetPayment() {
  setText(ui.payNote, '');
  show(ui.payPanel, false);
  ui.payLink.removeAttribute('href');
  ui.paymentLine.textContent = '';
  ui.refundLine.textContent = '';
  show(ui.paymentLine, false);
  show(ui.refundLine, false);
  state.checkoutReturn = null;
}
