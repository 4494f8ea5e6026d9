// What a merchant may send to open a checkout session, checked field by field.
import { HttpError, rejectUnknownFields, type Json } from './http.js';

export interface ValidSessionInput {
  merchant_ref: string;
  amount_cents: number;
  currency: string;
  method: 'card' | 'qr';
  webhook_url: string;
  expires_at?: string;
}

const SESSION_FIELDS = ['merchant_ref', 'amount_cents', 'currency', 'method', 'webhook_url', 'expires_at'] as const;

export function bad(message: string): HttpError {
  return new HttpError(400, 'invalid_request', message);
}

export function validateSessionInput(body: Json): ValidSessionInput {
  rejectUnknownFields(body, SESSION_FIELDS);
  const { merchant_ref, amount_cents, currency, method, webhook_url, expires_at } = body;
  if (typeof merchant_ref !== 'string' || merchant_ref.length === 0 || merchant_ref.length > 200) {
    throw bad('merchant_ref must be a non-empty string of at most 200 characters');
  }
  if (typeof amount_cents !== 'number' || !Number.isSafeInteger(amount_cents) || amount_cents <= 0) {
    throw bad('amount_cents must be a positive integer');
  }
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) throw bad('currency must be 3 uppercase letters');
  if (method !== 'card' && method !== 'qr') throw bad('method must be "card" or "qr"');
  if (typeof webhook_url !== 'string' || !isHttpUrl(webhook_url)) throw bad('webhook_url must be an http URL');
  const input: ValidSessionInput = { merchant_ref, amount_cents, currency, method, webhook_url };
  if (expires_at !== undefined && expires_at !== null) input.expires_at = validateExpiry(expires_at);
  return input;
}

function isHttpUrl(s: string): boolean {
  try {
    return new URL(s).protocol === 'http:';
  } catch {
    return false;
  }
}

function validateExpiry(value: unknown): string {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw bad('expires_at must be an ISO 8601 timestamp');
  if (ms <= Date.now()) throw bad('expires_at must be in the future');
  return new Date(ms).toISOString();
}
