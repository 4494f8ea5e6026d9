// Data a scenario needs, made through the public API like any client would: the
// admin, one category per shard, items, and customers (whose token names their shard).
import { randomUUID } from 'node:crypto';
import { expectStatus, type HttpClient } from '../lib/http.js';
import { shardOfToken } from '../lib/ids.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from './stack.js';

export interface Customer { id: string; token: string; shard: number }
export interface Item { id: string; shard: number; price_cents: number; stock: number }

const uniq = (p: string) => `${p}-${randomUUID().slice(0, 8)}`;


export class Fixture {
  private adminToken: string | null = null;
  private readonly categories = new Map<number, string>();

  constructor(readonly api: HttpClient) {}

  async admin(): Promise<string> {
    if (this.adminToken) return this.adminToken;
    const res = await this.api.call('POST', '/v1/sessions', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expectStatus(res, 201, 'admin login');
    return (this.adminToken = res.body.token as string);
  }

  /** Forgets the admin token (a scenario that stops a shard may need a session elsewhere). */
  resetAdmin(): void { this.adminToken = null; }

  /** A category on the wanted shard (creation fills the emptiest shard, so a few tries do). */
  async categoryOn(shard: number): Promise<string> {
    const known = this.categories.get(shard);
    if (known) return known;
    for (let i = 0; i < 12; i++) {
      const res = await this.api.call('POST', '/v1/categories', { token: await this.admin(), body: { name: uniq('chaos-cat') } });
      expectStatus(res, 201, 'create category');
      const s = res.body.shard as number;
      if (!this.categories.has(s)) this.categories.set(s, res.body.id as string);
      if (s === shard) return res.body.id as string;
    }
    throw new Error(`no category landed on shard ${shard}`);
  }

  async item(shard: number, stock: number, fields: Record<string, unknown> = {}): Promise<Item> {
    const body = { category_id: await this.categoryOn(shard), name: uniq('chaos-item'), price_cents: 500, currency: 'USD', stock, ...fields };
    const res = await this.api.call('POST', '/v1/items', { token: await this.admin(), body });
    expectStatus(res, 201, 'create item');
    return { id: res.body.id as string, shard, price_cents: body.price_cents as number, stock };
  }

  /** `perShard` items on each shard. */
  async items(shards: number[], perShard: number, stock: number, fields: Record<string, unknown> = {}): Promise<Item[]> {
    const out: Item[] = [];
    for (const s of shards) for (let i = 0; i < perShard; i++) out.push(await this.item(s, stock, fields));
    return out;
  }

  async customer(): Promise<Customer> {
    const email = `${uniq('chaos')}@example.com`;
    const password = 'chaos-password-1';
    const reg = await this.api.call('POST', '/v1/users', { body: { email, password } });
    expectStatus(reg, 201, 'register');
    const login = await this.api.call('POST', '/v1/sessions', { body: { email, password } });
    expectStatus(login, 201, 'login');
    const token = login.body.token as string;
    return { id: reg.body.id as string, token, shard: shardOfToken(token) };
  }

  /** n customers (bounded concurrency: registration hashes passwords); `accept` filters by session shard. */
  async customers(n: number, accept: (c: Customer) => boolean = () => true, concurrency = 8): Promise<Customer[]> {
    const out: Customer[] = [];
    let tries = 0;
    const triesMax = n * 6;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (out.length < n && tries < triesMax) {
        tries++;
        const c = await this.customer();
        if (accept(c) && out.length < n) out.push(c);
      }
    }));
    if (out.length < n) throw new Error(`only ${out.length} of ${n} customers matched after ${triesMax} registrations`);
    return out;
  }
}

export const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
export { uniq };
