import * as profile from '../../accounts/profile.js';
import * as accounts from '../../accounts/service.js';
import type { WorkerDeps } from '../../deps.js';
import type { RouteDef } from '../route.js';
import { object, S } from '../schemas.js';

const User = object({ id: S.id, email: S.email, name: { type: ['string', 'null'] }, role: { type: 'string' } });
const Session = object({ token: { type: 'string' }, user_id: S.id, role: { type: 'string' },
  expires_at: { type: 'string' } });

export function accountRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'post', path: '/v1/users', name: 'create_user', summary: 'Register a customer', auth: 'none',
      rateLimited: true,
      body: object({ email: S.email, password: S.password, name: S.name }, ['email', 'password']),
      response: { status: 201, schema: User },
      handler: async (ctx) => {
        const u = await accounts.signUp(deps, ctx.body, ctx.ip);
        return { status: 201, body: { id: u.id, email: u.email, name: u.name, role: u.role } };
      },
    },
    {
      method: 'post', path: '/v1/sessions', name: 'login', summary: 'Log in; returns a bearer token', auth: 'none',
      rateLimited: true,
      body: object({ email: S.email, password: { type: 'string', minLength: 1, maxLength: 200 } },
        ['email', 'password']),
      response: { status: 201, schema: Session },
      handler: async (ctx) => ({ status: 201, body: await accounts.login(deps, ctx.body, ctx.ip) }),
    },
    {
      method: 'del', path: '/v1/sessions/current', name: 'logout', summary: 'Revoke the current token', auth: 'user',
      response: { status: 204 },
      handler: async (ctx) => {
        await accounts.logout(deps, ctx.principal!, ctx.token!);
        return { status: 204 };
      },
    },
    ...profileRoutes(deps),
  ];
}

const nullableName = { type: ['string', 'null'], minLength: 1, maxLength: 200 };
// E.164-ish: a plus, a country code that does not start with 0, 7 to 15 digits in all.
const phone = { type: ['string', 'null'], pattern: '^\\+[1-9][0-9]{6,14}$' };
const AddressSchema = object({
  line1: { type: 'string', minLength: 1, maxLength: 200 }, line2: { type: 'string', maxLength: 200 },
  city: { type: 'string', minLength: 1, maxLength: 100 },
  postal_code: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9 -]{1,11}$' },
  country: { type: 'string', pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2' },
}, ['line1', 'city', 'postal_code', 'country']);
const ProfileSchema = object({
  id: S.id, email: { type: 'string' }, name: { type: ['string', 'null'] }, phone: { type: ['string', 'null'] },
  address: { anyOf: [{ type: 'null' }, AddressSchema] }, role: { type: 'string' }, created_at: { type: 'string' },
  updated_at: { type: 'string' },
});

function profileRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'get', path: '/v1/users/me', name: 'get_profile', summary: 'The caller\'s profile', auth: 'user',
      response: { status: 200, schema: ProfileSchema },
      handler: async (ctx) => ({ status: 200, body: await profile.getProfile(deps, ctx.principal!) }),
    },
    {
      method: 'patch', path: '/v1/users/me', name: 'update_profile',
      summary: 'Change name, phone or shipping address (null clears)', auth: 'user',
      body: object({ name: nullableName, phone, address: { anyOf: [{ type: 'null' }, AddressSchema] } }),
      response: { status: 200, schema: ProfileSchema },
      handler: async (ctx) => ({ status: 200, body: await profile.updateProfile(deps, ctx.principal!, ctx.body) }),
    },
    {
      method: 'post', path: '/v1/users/me/password', name: 'change_password',
      summary: 'Change the password; revokes every other session', auth: 'user',
      body: object({ current_password: { type: 'string', minLength: 1, maxLength: 200 }, new_password: S.password },
        ['current_password', 'new_password']),
      response: { status: 200, schema: object({ revoked_sessions: { type: 'integer' } }) },
      handler: async (ctx) => {
        const revoked = await profile.changePassword(deps, ctx.principal!, ctx.token!, ctx.body.current_password,
          ctx.body.new_password);
        return { status: 200, body: { revoked_sessions: revoked } };
      },
    },
    {
      method: 'del', path: '/v1/users/me', name: 'delete_account',
      summary: 'Delete the account: anonymizes personal data, revokes every session; orders stay', auth: 'user',
      response: { status: 204 },
      handler: async (ctx) => {
        await profile.deleteAccount(deps, ctx.principal!);
        return { status: 204 };
      },
    },
  ];
}
