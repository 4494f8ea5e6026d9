// The closed registry of runtime feature flags: a flag the code does not name here
// cannot be read or set. Each has a default that applies until an admin sets it.
export const FLAGS = {
  qr_payments: {
    default: true,
    description: 'Customers may pay by QR code. Off: POST /v1/orders/:id/payments {"method":"qr"} answers 403 ' +
      'feature_disabled; cards still work.',
  },
  sold_out_gate: {
    default: true,
    description: 'The sold-out admission gate answers holds on items known to be sold out without a database round ' +
      'trip. Off: every hold asks Postgres.',
  },
  new_checkout: {
    default: false,
    description: 'GET /v1/cart also answers a checkout preview: the per-shard orders POST /v1/cart/checkout would ' +
      'create now, with their totals. Read-only.',
  },
} as const satisfies Record<string, { default: boolean; description: string }>;

export type FlagName = keyof typeof FLAGS;

export function isFlagName(name: string): name is FlagName {
  return Object.prototype.hasOwnProperty.call(FLAGS, name);
}

export const FLAG_NAMES = Object.keys(FLAGS) as FlagName[];
