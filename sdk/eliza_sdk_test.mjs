// elizaOS's official client (@elizaos/api-client 1.7.2) reading sessions.
//
// Usage: node eliza_sdk_test.mjs BASE_URL ADMIN_KEY USER_KEY USER_ID NODE_PREFIX
// (USER_KEY is scoped to USER_ID; NODE_PREFIX holds node_modules.)
//
// Drives, unchanged: `sessions.listSessions()` (GET /api/messaging/sessions,
// no parameters: every live session up to 1,000, DESIGN.md §7),
// `sessions.getSession` (GET /api/messaging/sessions/{id}) and
// `sessions.checkHealth` (GET /api/messaging/sessions/health). The client
// ships TypeScript types only (no runtime schema): values are compared with
// the raw JSON of the same request, with every live session paged by cursor,
// and with the Clerk view of the same store.
import { Checks, raw as rawFor, requireFrom } from "./checks.mjs";

const [base, admin, userKey, user, prefix] = process.argv.slice(2);
const { ElizaClient, ApiError } = requireFrom(prefix)("@elizaos/api-client");

const c = new Checks("@elizaos/api-client");
const raw = rawFor(base, admin);
const client = ElizaClient.create({ baseUrl: base, apiKey: admin });
const ids = (list) => list.map((s) => s.sessionId);
/** What does not move with the clock. */
const stable = ({ timeRemaining, isNearExpiration, ...rest }) => rest;

/** Every live session, paged by the ledger's cursor (`x-next-cursor`). */
async function allLive(key = admin) {
  const get = rawFor(base, key);
  const out = [];
  let cursor = "";
  for (;;) {
    const r = await get(`/api/messaging/sessions?limit=200${cursor && `&cursor=${cursor}`}`);
    out.push(...r.body.sessions);
    cursor = r.headers.get("x-next-cursor");
    if (!cursor) return out;
  }
}

// listSessions() with no parameters equals the raw JSON of the same request.
const list = await c.same("listSessions() equals the raw JSON", async () => {
  const got = await client.sessions.listSessions();
  const wire = await raw("/api/messaging/sessions");
  return [
    { ...got, sessions: got.sessions.map(stable) },
    { ...wire.body, sessions: wire.body.sessions.map(stable) },
  ];
});
c.ok(list.sessions.length > 0, "live sessions listed");

// …and holds every live session up to 1,000 (DESIGN.md §7), with `total`
// and the stats counting them.
const live = await c.same("listSessions() holds every live session up to 1,000", async () => {
  const got = await client.sessions.listSessions();
  const every = await allLive();
  return [
    { ids: ids(got.sessions), total: got.total, active: got.stats.activeSessions },
    { ids: ids(every).slice(0, 1000), total: every.length, active: every.length },
  ];
});
c.ok(live.ids.length === Math.min(live.total, 1000), `${live.ids.length} sessions = min(total ${live.total}, 1000)`);
c.ok(list.stats.expiredSessions === list.stats.totalSessions - list.stats.activeSessions, "stats add up");
await c.same("active sessions equal Clerk's active count", async () => [
  (await client.sessions.listSessions()).stats.activeSessions,
  (await raw("/v1/sessions?status=active&paginated=true&limit=1")).body.total_count,
]);

// Each session: live, newest first, its own clock fields consistent, and the
// same facts as the Clerk view of it.
const t0 = Date.now();
const fresh = await client.sessions.listSessions();
const t1 = Date.now();
const created = fresh.sessions.map((s) => Date.parse(s.createdAt));
c.ok(created.every((t, i) => i === 0 || created[i - 1] >= t), "newest first");
for (const s of fresh.sessions) {
  const expires = Date.parse(s.expiresAt);
  c.ok(s.timeRemaining > 0 && expires - s.timeRemaining >= t0 - 5 && expires - s.timeRemaining <= t1 + 5, "timeRemaining = expiresAt - now");
  const warn = s.timeoutConfig.warningThresholdMinutes * 60_000;
  c.ok(s.isNearExpiration === (s.timeRemaining > 0 && s.timeRemaining <= warn), "isNearExpiration");
  c.ok(Number.isInteger(s.timeoutConfig.timeoutMinutes) && typeof s.timeoutConfig.autoRenew === "boolean", "timeoutConfig");
}
// (Sessions a minute or more from expiry, so none expires meanwhile.)
for (const s of fresh.sessions.filter((s) => s.timeRemaining > 60_000).slice(0, 25)) {
  const k = (await raw(`/v1/sessions/${s.sessionId}`)).body;
  c.ok(k.user_id === s.userId && k.created_at === Date.parse(s.createdAt), "Clerk's user and creation time");
  c.ok(k.expire_at === Date.parse(s.expiresAt) && k.last_active_at === Date.parse(s.lastActivity), "Clerk's expiry and last activity");
  const one = await client.sessions.getSession(s.sessionId);
  c.ok(JSON.stringify(stable(one)) === JSON.stringify(stable(s)), "getSession equals the list item");
}

// A key scoped to the user lists that user's live sessions.
const scoped = ElizaClient.create({ baseUrl: base, apiKey: userKey });
await c.same("scoped listSessions() is the user's live sessions", async () => {
  const got = await scoped.sessions.listSessions();
  c.ok(got.sessions.every((s) => s.userId === user), "only the user's sessions");
  return [ids(got.sessions), ids((await allLive()).filter((s) => s.userId === user))];
});

// Errors: the client's ApiError with the status and elizaOS's codes.
let e = await c.rejects(() => client.sessions.getSession("sess_does_not_exist"), "an unknown id");
c.ok(e instanceof ApiError && e.status === 404 && e.code === "SESSION_NOT_FOUND", `404 ApiError, got ${e}`);
const expired = (await raw("/v1/sessions?status=expired&limit=1")).body[0];
e = await c.rejects(() => client.sessions.getSession(expired.id), "an expired session");
c.ok(e instanceof ApiError && e.status === 410 && e.code === "SESSION_EXPIRED", `410 ApiError, got ${e}`);
e = await c.rejects(() => ElizaClient.create({ baseUrl: base, apiKey: "wrong-key" }).sessions.listSessions(), "a wrong key");
c.ok(e instanceof ApiError && e.status === 401 && typeof e.code === "string", `401 ApiError, got ${e}`);

// Health counts the same live sessions and those near expiry.
const health = await client.sessions.checkHealth();
c.ok(health.status === "healthy" && !Number.isNaN(Date.parse(health.timestamp)), "health status and timestamp");
await c.same("health counts the live sessions", async () => [
  (await client.sessions.checkHealth()).activeSessions,
  (await client.sessions.listSessions()).stats.activeSessions,
]);
await c.same("expiringSoon counts the sessions near expiration", async () => [
  (await client.sessions.checkHealth()).expiringSoon,
  (await allLive()).filter((s) => s.isNearExpiration).length,
]);

c.done(`${live.total} live sessions, ${live.ids.length} listed`);
