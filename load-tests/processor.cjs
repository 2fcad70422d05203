// Artillery processor for sandpool's load scenarios (socketio engine).
// The engine opens one Socket.IO connection per virtual user; these functions
// drive the protocol on it and record real timings as Artillery metrics:
//   sandpool.first_tool_result   message -> first tool:result (ms)
//   sandpool.returning|new.first_tool_result   the same, by kind of user (returning.yml)
//   sandpool.users.returning|new returning.yml: arrivals by kind (counters)
//   sandpool.message_done        message -> message:done (ms)
//   sandpool.refused.<CODE>      refusals by error code (counters)
//   sandpool.quota.<plan>.users|accepted|refused   quotas.yml, per plan (counters)
//   sandpool.quota.wrong.<what>  quotas.yml: a refusal or an ack that breaks the contract
'use strict';

const STEP_TIMEOUT_MS = 60_000;

/**
 * An HS256 JWT for this user (sub, its plan if any, iat, exp in an hour), for a deployment with
 * AUTH_SECRET (the swarm lab): LOAD_AUTH_SECRET holds the same secret. Without
 * it, users connect with the development identity (auth.userId).
 */
function signToken(sub, secret, plan) {
  const crypto = require('node:crypto');
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, ...(plan ? { plan } : {}), iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/**
 * Makes this virtual user a distinct sandpool user, then records every event.
 *
 * Artillery (2.0.x) templates `config.socketio` once, when the scenario is
 * compiled, so `{{ $uuid }}` there is the same (undefined) for every virtual
 * user: all of them would be one user on one replica. The engine's socket
 * therefore connects as a bootstrap identity, and this step gives it the
 * user's own auth and ?uid= (the nginx routing key) and reconnects it. The
 * bootstrap connection is closed at once.
 */
function becomeUser(context, events, done) {
  const socket = context.sockets && context.sockets[''];
  if (!socket) return done(new Error('no socket for this virtual user'));
  const prefix = context.vars.userPrefix || 'load';
  // pickReturningUser (returning.yml) may have chosen who this is.
  const uid = context.vars.uid || `${prefix}-${context.vars.$uuid}`;
  // The user's plan (quotas.yml): a claim of the signed token, or the development identity's own field.
  const plan = context.vars.plan;
  socket.auth = process.env.LOAD_AUTH_SECRET
    ? { token: signToken(uid, process.env.LOAD_AUTH_SECRET, plan) }
    : plan ? { userId: uid, plan } : { userId: uid };
  socket.io.opts.query = { uid };
  // The engine's own once('connect_error'/'error') listeners for the bootstrap
  // connect are still attached: a failed reconnect here would call its
  // callback a second time, and Artillery's worker dies of "Callback was
  // already called" (seen at ~9800 users). The failure is this step's to report.
  socket.removeAllListeners('connect_error');
  socket.removeAllListeners('error');
  socket.disconnect();
  const timer = setTimeout(() => done(new Error('reconnect as the user timed out')), STEP_TIMEOUT_MS);
  const onError = (err) => {
    clearTimeout(timer);
    socket.off('connect', onConnect);
    events.emit('counter', `sandpool.connect_error.${String((err && err.message) || 'unknown').replace(/[^A-Za-z0-9_ -]/g, '').slice(0, 60)}`, 1);
    done(err);
  };
  const onConnect = () => {
    clearTimeout(timer);
    socket.off('connect_error', onError);
    // A connection lost later (and reconnected by the client) is counted, not hidden.
    socket.on('disconnect', (reason) => {
      if (reason !== 'io client disconnect') events.emit('counter', `sandpool.dropped.${String(reason).replace(/[^A-Za-z0-9_ -]/g, '')}`, 1);
    });
    trackEvents(context, events, done);
  };
  socket.once('connect', onConnect);
  socket.once('connect_error', onError);
  socket.connect();
}

/** Records every event from the moment it is called, so nothing that arrives early is missed. */
function trackEvents(context, events, done) {
  const socket = context.sockets && context.sockets[''];
  if (!socket) return done(new Error('no socket for this virtual user'));
  const log = [];
  const waiters = new Set();
  // Artillery patches the socket with socketio-wildcard, whose onevent bypasses
  // onAny; every event arrives as '*' with the packet instead.
  socket.on('*', (packet) => {
    const [event, payload] = (packet && packet.data) || [];
    if (process.env.SANDPOOL_LOAD_DEBUG) console.error('[processor] event', event, JSON.stringify(payload).slice(0, 120));
    log.push({ event, payload, taken: false });
    for (const w of [...waiters]) w();
  });
  context.sandpool = { socket, log, waiters };
  return done();
}

/** The first untaken `event` matching `match`, already received or still to come. */
function nextEvent(context, event, match, timeoutMs = STEP_TIMEOUT_MS) {
  const { log, waiters } = context.sandpool;
  return new Promise((resolve, reject) => {
    const check = () => {
      const hit = log.find((e) => !e.taken && e.event === event && match(e.payload));
      if (!hit) return false;
      hit.taken = true;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(hit.payload);
      return true;
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    if (!check()) waiters.add(check);
  });
}

function emitAck(socket, event, payload) {
  return new Promise((resolve, reject) => {
    socket.timeout(STEP_TIMEOUT_MS).emit(event, payload, (err, ack) => (err ? reject(err) : resolve(ack)));
  });
}

/**
 * The seed flow after `message` was emitted (its ack captured as requestId):
 * wait for tool:request, think, approve, wait for message:done.
 */
async function approveAndFinish(context, events) {
  const sentAt = context.vars.sentAt;
  // This user sends one message: its id comes with message:accepted (sent right after the ack).
  const accepted = await nextEvent(context, 'message:accepted', () => true);
  const requestId = accepted.requestId;
  const mine = (p) => p && p.requestId === requestId;
  const failed = nextEvent(context, 'request:error', mine).then((e) => {
    throw new Error(`request:error ${e.error.code}`);
  });
  failed.catch(() => undefined);
  const req = await Promise.race([nextEvent(context, 'tool:request', mine), failed]);
  const thinkMs = Number(context.vars.approvalThinkMs || 0);
  if (thinkMs > 0) await new Promise((r) => setTimeout(r, thinkMs));
  const decided = await emitAck(context.sandpool.socket, 'tool:approval', { callId: req.callId, approved: true });
  if (!decided || decided.ok !== true) throw new Error(`approval refused: ${decided && decided.error ? decided.error.code : '?'}`);
  const result = await Promise.race([nextEvent(context, 'tool:result', (r) => r && r.callId === req.callId), failed]);
  if (!result.ok) throw new Error('tool:result not ok');
  events.emit('histogram', 'sandpool.first_tool_result', Date.now() - sentAt - thinkMs);
  if (context.vars.userKind) events.emit('histogram', `sandpool.${context.vars.userKind}.first_tool_result`, Date.now() - sentAt - thinkMs);
  await Promise.race([nextEvent(context, 'message:done', mine), failed]);
  events.emit('histogram', 'sandpool.message_done', Date.now() - sentAt - thinkMs);
}

function markSent(context, events, done) {
  context.vars.sentAt = Date.now();
  return done();
}

function approveAndWait(context, events, done) {
  approveAndFinish(context, events).then(
    () => done(),
    (err) => {
      // Artillery counts a failed function step only as vusers.failed; name the cause.
      events.emit('counter', `sandpool.errors.${String(err && err.message).replace(/[^A-Za-z0-9:_ -]/g, '').slice(0, 60)}`, 1);
      done(err);
    },
  );
}

/** backpressure.yml: 10 concurrent messages; exactly the excess must be refused with TOO_MANY_REQUESTS. */
function fireTen(context, events, done) {
  const socket = context.sandpool.socket;
  const sends = Array.from({ length: 10 }, () => emitAck(socket, 'message', 'list files in /workspace'));
  Promise.all(sends)
    .then(async (acks) => {
      const accepted = acks.filter((a) => a && a.ok);
      const refused = acks.filter((a) => a && !a.ok);
      events.emit('counter', 'sandpool.backpressure.accepted', accepted.length);
      for (const r of refused) events.emit('counter', `sandpool.refused.${r.error.code}`, 1);
      const unexpected = refused.filter((r) => r.error.code !== 'TOO_MANY_REQUESTS');
      if (unexpected.length > 0) throw new Error(`unexpected refusal ${unexpected[0].error.code}`);
      // Deny the accepted ones so every slot is freed, and check each ends.
      for (const a of accepted) {
        const req = await nextEvent(context, 'tool:request', (p) => p && p.requestId === a.requestId);
        await emitAck(socket, 'tool:approval', { callId: req.callId, approved: false });
        await nextEvent(context, 'message:done', (p) => p && p.requestId === a.requestId);
      }
    })
    .then(() => done(), (err) => done(err));
}

/** quotas.yml: this virtual user's plan, the plans taken in turn (by a counter shared by this worker's users). */
let planTurn = 0;
function pickPlan(context, events, done) {
  const plans = String(context.vars.plans || '').split(',').map((p) => p.split(':'));
  const [name, limit] = plans[planTurn++ % plans.length] || [];
  if (!name || !Number(limit)) return done(new Error(`bad plans variable: ${context.vars.plans}`));
  context.vars.plan = name;
  context.vars.planLimit = Number(limit);
  events.emit('counter', `sandpool.quota.${name}.users`, 1);
  return done();
}

/**
 * quotas.yml: limit + extraMessages messages one after another, each tool
 * call approved. The first `limit` must be accepted (quota.remaining.hour
 * counting down to 1) and run; the rest refused in the ack with the
 * QUOTA_EXCEEDED fields of this plan.
 */
async function spend(context, events) {
  const { plan, planLimit } = context.vars;
  const extra = Number(context.vars.extraMessages || 2);
  const wrong = (what) => events.emit('counter', `sandpool.quota.wrong.${what}`, 1);
  for (let i = 0; i < planLimit + extra; i++) {
    const ack = await emitAck(context.sandpool.socket, 'message', 'list files in /workspace');
    if (ack && ack.ok) {
      events.emit('counter', `sandpool.quota.${plan}.accepted`, 1);
      if (i >= planLimit) wrong('accepted_over_limit');
      if (!ack.quota || ack.quota.plan !== plan || ack.quota.remaining.hour !== planLimit - i) wrong('ack_quota');
      const mine = (p) => p && p.requestId === ack.requestId;
      // A request that fails instead (request:error) is named, not left to time out.
      const failed = nextEvent(context, 'request:error', mine).then((e) => {
        events.emit('counter', `sandpool.quota.request_error.${e.error.code}`, 1);
        throw new Error(`request:error ${e.error.code}`);
      });
      failed.catch(() => undefined);
      const req = await Promise.race([nextEvent(context, 'tool:request', mine), failed]);
      await emitAck(context.sandpool.socket, 'tool:approval', { callId: req.callId, approved: true });
      await Promise.race([nextEvent(context, 'message:done', mine), failed]);
      continue;
    }
    const error = (ack && ack.error) || {};
    events.emit('counter', `sandpool.quota.${plan}.refused`, 1);
    events.emit('counter', `sandpool.refused.${error.code}`, 1);
    if (i < planLimit) wrong('refused_under_limit');
    if (error.code !== 'QUOTA_EXCEEDED') wrong(`code_${error.code}`);
    else if (error.plan !== plan || error.window !== 'hour' || error.limit !== planLimit || !(error.retryAfterSeconds > 0)) wrong('refusal_fields');
  }
}

function spendQuota(context, events, done) {
  spend(context, events).then(
    () => done(),
    (err) => {
      events.emit('counter', `sandpool.errors.${String(err && err.message).replace(/[^A-Za-z0-9:_ -]/g, '').slice(0, 60)}`, 1);
      done(err);
    },
  );
}

/**
 * returning.yml: users who come back. Each new user makes `visitsPerUser`
 * visits in all (5: 4 of every 5 arrivals are returning users), each return
 * `returnAfterMs` after it left (past SESSION_DISCONNECT_GRACE_MS, so its
 * sandbox was parked or removed). An arrival is the user whose return is
 * due longest, or a new user when none is due. Kept per worker: ids carry
 * the worker's pid and thread, so no two workers are one user.
 */
const returning = { due: [], seq: 0 };
const { threadId } = require('node:worker_threads');

function pickReturningUser(context, events, done) {
  const now = Date.now();
  const head = returning.due[0];
  if (head && head.at <= now) {
    returning.due.shift();
    context.vars.uid = head.uid;
    context.vars.visitsLeft = head.visitsLeft;
    context.vars.userKind = 'returning';
  } else {
    context.vars.uid = `${context.vars.userPrefix || 'load'}-${process.pid}-${threadId}-${returning.seq++}`;
    context.vars.visitsLeft = Number(context.vars.visitsPerUser || 5) - 1;
    context.vars.userKind = 'new';
  }
  events.emit('counter', `sandpool.users.${context.vars.userKind}`, 1);
  return done();
}

/** After the flow: the user leaves (the engine disconnects it) and is due back later, while visits are left. */
function scheduleReturn(context, events, done) {
  if (context.vars.visitsLeft > 0) {
    returning.due.push({ uid: context.vars.uid, visitsLeft: context.vars.visitsLeft - 1, at: Date.now() + Number(context.vars.returnAfterMs || 10_000) });
  }
  return done();
}

module.exports = { pickReturningUser, scheduleReturn, becomeUser, trackEvents, markSent, approveAndWait, fireTen, pickPlan, spendQuota };
