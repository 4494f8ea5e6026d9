// The gateway's hosted checkout page: buttons labelled "Pay" and "Decline" while the
// session can still be paid, the outcome once it is settled.
import { escapeHtml } from './http.js';

export interface PageSession {
  id: string; merchant_ref: string; amount_cents: number; currency: string;
  status: 'pending' | 'succeeded' | 'declined' | 'expired' | 'refunded';
}

function formatAmount(cents: number, currency: string): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')} ${currency}`;
}

const RESULT_TEXT: Record<PageSession['status'], string> = {
  pending: 'Awaiting payment',
  succeeded: 'Payment succeeded',
  declined: 'Payment declined',
  expired: 'Session expired',
  refunded: 'Payment refunded',
};

export function checkoutPage(s: PageSession | undefined): string {
  if (!s) return page('Not found', '<h1>Checkout not found</h1>');
  const base = `/checkout/${encodeURIComponent(s.id)}`;
  const actions =
    s.status === 'pending'
      ? `<form method="post" action="${base}/pay"><button type="submit" id="pay">Pay</button></form>
<form method="post" action="${base}/decline"><button type="submit" id="decline">Decline</button></form>`
      : `<p id="result">${RESULT_TEXT[s.status]}</p>`;
  return page(
    `Checkout ${s.id}`,
    `<h1>Checkout</h1>
<p>Merchant reference: <span id="merchant-ref">${escapeHtml(s.merchant_ref)}</span></p>
<p>Amount: <span id="amount">${formatAmount(s.amount_cents, s.currency)}</span></p>
<p>Status: <span id="status">${s.status}</span></p>
${actions}`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>
`;
}
