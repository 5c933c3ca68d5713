// Clerk's official Node SDK (@clerk/backend 3.25.0) reading sessions.
//
// Usage: node clerk_js_sdk_test.mjs BASE_URL ADMIN_KEY USER_KEY USER_ID NODE_PREFIX
// (USER_KEY is scoped to USER_ID; NODE_PREFIX holds node_modules.)
//
// Drives, unchanged: `sessions.getSessionList` (GET /v1/sessions, which it
// always sends with paginated=true and reads as {data, total_count}) and
// `sessions.getSession` (GET /v1/sessions/{id}). The SDK ships no runtime
// schema: every field of its `Session` objects is compared with the raw JSON
// of the same request, and lists with what their filters promise.
import { Checks, raw as rawFor, requireFrom } from "./checks.mjs";

const [base, admin, userKey, user, prefix] = process.argv.slice(2);
const require = requireFrom(prefix);
const { createClerkClient } = require("@clerk/backend");
const { ClerkAPIResponseError } = require("@clerk/backend/errors");

const c = new Checks("@clerk/backend");
const raw = rawFor(base, admin);
const clerk = createClerkClient({ secretKey: admin, apiUrl: base, telemetry: { disabled: true } });

/** A raw Session as the SDK's `Session` would hold it. */
const fromWire = (s) => ({
  id: s.id,
  clientId: s.client_id,
  userId: s.user_id,
  status: s.status,
  lastActiveAt: s.last_active_at,
  expireAt: s.expire_at,
  abandonAt: s.abandon_at,
  createdAt: s.created_at,
  updatedAt: s.updated_at,
  lastActiveOrganizationId: s.last_active_organization_id,
  latestActivity: s.latest_activity && {
    id: s.latest_activity.id,
    isMobile: s.latest_activity.is_mobile,
    ipAddress: s.latest_activity.ip_address,
    city: s.latest_activity.city,
    country: s.latest_activity.country,
    browserVersion: s.latest_activity.browser_version,
    browserName: s.latest_activity.browser_name,
    deviceType: s.latest_activity.device_type,
  },
  actor: s.actor,
});
/** An SDK `Session` as plain data. */
const plain = (s) => ({
  id: s.id,
  clientId: s.clientId,
  userId: s.userId,
  status: s.status,
  lastActiveAt: s.lastActiveAt,
  expireAt: s.expireAt,
  abandonAt: s.abandonAt,
  createdAt: s.createdAt,
  updatedAt: s.updatedAt,
  lastActiveOrganizationId: s.lastActiveOrganizationId,
  latestActivity: s.latestActivity && { ...s.latestActivity },
  actor: s.actor,
});
const query = (p) =>
  new URLSearchParams(Object.entries({ ...p, paginated: true }).filter(([, v]) => v)).toString();

/** The SDK's list and the raw JSON of the same request, side by side. */
async function both(params) {
  const got = await clerk.sessions.getSessionList(params);
  const wire = await raw(`/v1/sessions?${query({ user_id: params.userId, client_id: params.clientId, status: params.status, limit: params.limit, offset: params.offset })}`);
  return [
    { data: got.data.map(plain), totalCount: got.totalCount },
    { data: wire.body.data.map(fromWire), totalCount: wire.body.total_count },
  ];
}

// The user's sessions: the SDK's objects equal the raw JSON, field by field.
const mine = await c.same("user list equals the raw JSON", () => both({ userId: user, limit: 500 }));
c.ok(mine.data.length > 0 && mine.totalCount === mine.data.length, `totalCount ${mine.totalCount} = the whole list`);
c.ok(mine.data.every((s) => s.userId === user), "user_id filter");
const created = mine.data.map((s) => s.createdAt);
c.ok(created.every((t, i) => i === 0 || created[i - 1] >= t), "newest first");
for (const s of mine.data) {
  c.ok(Number.isInteger(s.createdAt) && s.createdAt > 1e12, "times in Unix ms");
  c.ok(s.lastActiveAt >= s.createdAt && s.abandonAt > s.lastActiveAt, "lifecycle times in order");
  c.ok(s.latestActivity === null || typeof s.latestActivity.isMobile === "boolean", "latestActivity");
}
const list = await clerk.sessions.getSessionList({ userId: user, limit: 1 });
c.ok(list.data[0].constructor.name.includes("Session") && !("user_id" in list.data[0]), "deserialized into Session objects");

// Offset paging through the SDK walks the same list; totalCount stays.
const paged = [];
for (let offset = 0; offset < mine.totalCount; offset += 3) {
  const page = await clerk.sessions.getSessionList({ userId: user, limit: 3, offset });
  c.ok(page.totalCount === mine.totalCount, "totalCount on every page");
  paged.push(...page.data.map((s) => s.id));
}
c.ok(JSON.stringify(paged) === JSON.stringify(mine.data.map((s) => s.id)), "offset paging");

// Client and status filters filter; counts equal list lengths.
const client = mine.data[0].clientId;
const byClient = await c.same("client list equals the raw JSON", () => both({ clientId: client, limit: 500 }));
c.ok(byClient.data.length > 0 && byClient.data.every((s) => s.clientId === client), "client_id filter");
c.ok(byClient.totalCount === byClient.data.length, "client totalCount");
const statuses = new Set();
for (const status of ["active", "ended", "expired", "abandoned", "revoked", "removed", "replaced"]) {
  const got = await c.same(`status=${status} equals the raw JSON`, () => both({ status, limit: 500 }));
  c.ok(got.data.every((s) => s.status === status), `status=${status} filter`);
  c.ok(got.totalCount >= got.data.length && (got.data.length === 500 || got.totalCount === got.data.length), `status=${status} totalCount`);
  if (got.data.length) statuses.add(status);
}
c.ok(statuses.size >= 3, `several statuses present: ${[...statuses]}`);
const all = await raw("/v1/sessions?paginated=true&limit=1");
const sum = await c.same("status counts add up to the total", async () => {
  let n = 0;
  for (const status of ["active", "ended", "expired", "abandoned", "revoked", "removed", "replaced"]) {
    n += (await clerk.sessions.getSessionList({ status, limit: 1 })).totalCount;
  }
  // Clerk has no `pending` filter; orq's view counts the pending shells.
  const pending = await raw("/v2/traces/sessions/count", {
    method: "POST",
    body: JSON.stringify({ query: { filters: [{ path: "/status", operator: "is", value: "pending" }] } }),
  });
  return [n + pending.body.count, all.body.total_count];
});
c.ok(sum > 1000, "the whole stream is listed");

// One session equals its list item and the raw JSON.
for (const s of mine.data.slice(0, 5)) {
  const one = await c.same(`getSession ${s.id} equals the raw JSON`, async () => [
    plain(await clerk.sessions.getSession(s.id)),
    fromWire((await raw(`/v1/sessions/${s.id}`)).body),
  ]);
  c.ok(one.id === s.id && one.createdAt === s.createdAt && one.userId === s.userId, "getSession equals the list item");
}

// Errors: ClerkAPIResponseError with the status and Clerk's error codes.
let e = await c.rejects(() => clerk.sessions.getSession("sess_does_not_exist"), "an unknown id");
c.ok(e instanceof ClerkAPIResponseError && e.status === 404 && e.errors[0].code === "resource_not_found", `404: ${e}`);
c.ok(e.clerkTraceId && e.errors[0].longMessage.includes("sess_does_not_exist"), "404 trace id and long message");
e = await c.rejects(() => clerk.sessions.getSessionList({ limit: 501 }), "limit 501");
c.ok(e instanceof ClerkAPIResponseError && e.status === 422 && e.errors[0].code === "form_param_value_invalid", `422: ${e}`);
const bad = createClerkClient({ secretKey: "sk_wrong", apiUrl: base, telemetry: { disabled: true } });
e = await c.rejects(() => bad.sessions.getSessionList({ userId: user }), "a wrong key");
c.ok(e instanceof ClerkAPIResponseError && e.status === 401 && e.errors[0].code === "authorization_invalid", `401: ${e}`);

// A key scoped to the user: the same list; another user is refused.
const scoped = createClerkClient({ secretKey: userKey, apiUrl: base, telemetry: { disabled: true } });
const own = await scoped.sessions.getSessionList({ limit: 500 });
c.ok(JSON.stringify(own.data.map((s) => s.id)) === JSON.stringify(mine.data.map((s) => s.id)), "scoped key lists its user's sessions");
const other = (await raw("/v1/sessions?limit=500")).body.find((s) => s.user_id !== user);
e = await c.rejects(() => scoped.sessions.getSession(other.id), "another user's session");
c.ok(e instanceof ClerkAPIResponseError && e.status === 404 && e.errors[0].code === "resource_not_found", `another user's session is an unknown id (404): ${e}`);

c.done(`${mine.totalCount} sessions of ${user}, ${all.body.total_count} in all`);
