// GET /v1/stream: the live stream over WebSocket on the same uWS app. Here: the route,
// its socket limits, the upgrade (an HTTP request until it succeeds: a refusal is an HTTP
// error answer) and its entry in /openapi.json. The protocol on the open socket is
// src/realtime/stream.ts.
import { EngineError } from '../../errors.js';
import { admissionShed } from '../../metrics/index.js';
import type { Format } from '../../realtime/hub.js';
import { Stream, type Conn, type StreamEnv } from '../../realtime/stream.js';
import { documentedOperation, type PathItems } from '../openapi.js';
import { errorReply, type Replies } from '../reply.js';
import { compileQuery, object } from '../schemas.js';
import { CLOSE_ON_BACKPRESSURE_LIMIT, uws, type HttpRequest, type HttpResponse, type TemplatedApp,
  type us_socket_context_t } from '../uws.js';

export interface UpgradeEnv extends StreamEnv { replies: Replies }

const QUERY = { token: { type: 'string', minLength: 1, maxLength: 200 },
  format: { type: 'string', enum: ['json', 'msgpack'] } };
const validateQuery = compileQuery(object(QUERY));

/** The stream in /openapi.json: an upgrade, documented beside the route table. */
export function streamOpenApi(): PathItems {
  return {
    '/v1/stream': {
      get: documentedOperation({
        name: 'stream', auth: 'optional',
        summary: 'Live item availability and order status over a WebSocket (upgrade)',
        description: 'A WebSocket upgrade (Connection: Upgrade, Upgrade: websocket). Messages are JSON text frames ' +
          '(binary msgpack with format=msgpack): {"op":"auth","token"} -> {"op":"authenticated","user_id","role"}; ' +
          '{"op":"subscribe","topics":["items/<id>","orders/<id>"]} -> ' +
          '{"op":"subscribed","topics":[...],"refused":[...]} then the current state of each topic; ' +
          '{"op":"unsubscribe","topics":[...]} -> {"op":"unsubscribed","topics":[...]}; events ' +
          '{"op":"event","topic","type":"item.available"|"order.status","data"}; ' +
          'errors {"op":"error","error":{type,code,message}}. Orders only to their owner or an admin. A GET without ' +
          'the upgrade headers is not this route (404).',
        parameters: Object.entries(QUERY).map(([name, schema]) => ({
          name, in: 'query', schema,
          description: name === 'token' ? 'a bearer token, instead of an auth message; a bad one is 401 and no ' +
            'upgrade' : 'frame encoding (default json)',
        })),
        responses: {
          '101': { description: 'Switching Protocols: the socket is open',
            headers: { 'X-Request-Id': { schema: { type: 'string' } } } },
        },
      }),
    },
  };
}

export function mountStream(app: TemplatedApp, env: UpgradeEnv): void {
  const cfg = env.deps.cfg;
  const stream = new Stream(env);
  app.ws<Conn>('/v1/stream', {
    maxPayloadLength: cfg.streamMaxMessageBytes,
    maxBackpressure: cfg.streamMaxBackpressureBytes,
    closeOnBackpressureLimit: CLOSE_ON_BACKPRESSURE_LIMIT,
    idleTimeout: cfg.streamIdleTimeoutS,
    sendPingsAutomatically: true,
    compression: uws().DISABLED,
    upgrade: (res, req, context) => upgrade(env, stream, res, req, context),
    open: (ws) => stream.open(ws),
    message: (ws, message, isBinary) => stream.message(ws, message, isBinary),
    close: (ws) => stream.close(ws),
  });
}

/** Validates the query and the token, then upgrades; any refusal is an HTTP error answer. */
function upgrade(env: UpgradeEnv, stream: Stream, res: HttpResponse, req: HttpRequest,
  context: us_socket_context_t): void {
  const requestId = env.replies.nextRequestId();
  const key = req.getHeader('sec-websocket-key');
  const protocol = req.getHeader('sec-websocket-protocol');
  const extensions = req.getHeader('sec-websocket-extensions');
  const rawQuery = req.getQuery() ?? '';
  const state = { aborted: false };
  res.onAborted(() => { state.aborted = true; });
  void (async () => {
    try {
      const query = Object.fromEntries(new URLSearchParams(rawQuery)) as { token?: string; format?: Format };
      validateQuery(query);
      if (!stream.hasRoom()) {
        admissionShed.inc({ reason: 'stream_sockets' });
        throw new EngineError('overloaded', 'Too many stream connections on this server', { retryAfterS: 1 });
      }
      const principal = query.token ? await env.admission.run('request', 1,
        () => env.authenticate(query.token!)) : null;
      if (query.token && !principal) throw new EngineError('unauthenticated');
      if (state.aborted) return;
      const conn = stream.connection(requestId, query.format ?? 'json', principal, principal ? query.token! : null);
      res.cork(() => {
        res.writeStatus('101 Switching Protocols');
        res.writeHeader('x-request-id', requestId);
        res.upgrade(conn, key, protocol, extensions, context);
      });
    } catch (err) {
      if (!state.aborted) env.replies.send(res, requestId, errorReply(err, requestId));
    }
  })();
}
