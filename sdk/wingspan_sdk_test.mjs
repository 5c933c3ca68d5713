// Wingspan's official users SDK (@wingspan/users 2.0.1) reading sessions.
//
// Usage: node wingspan_sdk_test.mjs BASE_URL ADMIN_KEY USER_KEY USER_ID NODE_PREFIX
// (USER_KEY is scoped to USER_ID; NODE_PREFIX holds node_modules.)
//
// The SDK joins its `serverURL` and each operation's path, sends the key as
// `Authorization: Bearer`, sends no query parameters, and parses 200 bodies
// with its zod schemas (`ApiSessionResponse$`, `SessionResponse$`); any other
// status is an `SDKError`. Drives, unchanged:
// `sessionAndAuthentication.getUsersSessionApi` (GET /users/session/api: the
// key's own API sessions, so a user-scoped key), `getUsersSessionApiId`
// (GET /users/session/api/{id}) and `getUsersSessionTokenId`
// (GET /users/session/token/{id}). That last operation is declared with a
// 204 response only, so the SDK raises `SDKError` on the ledger's 200
// `SessionResponse`; the test validates that body with the SDK's own schema.
import { isDeepStrictEqual as equal } from "node:util";

import { Checks, raw as rawFor, requireFrom } from "./checks.mjs";

const [base, admin, userKey, user, prefix] = process.argv.slice(2);
const require = requireFrom(prefix);
const { Users } = require("@wingspan/users");
const { SDKError } = require("@wingspan/users/sdk/models/errors");
const { ApiSessionResponse$, SessionResponse$ } = require("@wingspan/users/sdk/models/shared");

const c = new Checks("@wingspan/users");
const raw = rawFor(base, admin);
const rawUser = rawFor(base, userKey);
const sdk = new Users({ serverURL: base, bearerAuth: userKey }).sessionAndAuthentication;
const iso = (ms) => new Date(ms).toISOString();

// The list: the SDK's parsed items equal the raw JSON of the same request
// parsed with the SDK's schema, and the schema accepts every raw item.
const list = await c.same("list equals the raw JSON", async () => {
  const res = await sdk.getUsersSessionApi();
  c.ok(res.statusCode === 200 && Array.isArray(res.classes), "200 with a list");
  const wire = await rawUser("/users/session/api");
  return [res.classes, wire.body.map((s) => ApiSessionResponse$.inboundSchema.parse(s))];
});
c.ok(list.length > 0, `the user has API sessions (${list.length})`);
for (const s of list) {
  c.ok(s.sessionType === "API" && s.userId === user, "the key's user, API sessions only");
  c.ok(s.isUnlimitedExpiration === s.expiration.startsWith("9999-12-31T23:59:59"), "isUnlimitedExpiration");
  c.ok(!("token" in s), "never a token");
}

// The list is exactly the user's API sessions, in Clerk's order, with
// Clerk's expiry: every session of the user is read through the token route
// (its type) and the Clerk view (its expiry).
const clerk = (await raw(`/v1/sessions?user_id=${user}&limit=500`)).body;
const types = {};
for (const s of clerk) {
  const r = await raw(`/users/session/token/${s.id}`);
  c.ok(r.status === 200, "token route for each session");
  types[s.id] = SessionResponse$.inboundSchema.parse(r.body).sessionType;
}
const want = clerk.filter((s) => types[s.id] === "API");
c.ok(JSON.stringify(list.map((s) => s.sessionId)) === JSON.stringify(want.map((s) => s.id)), "exactly the user's API sessions, newest first");
for (const [i, s] of list.entries()) {
  if (!s.isUnlimitedExpiration) c.ok(s.expiration === iso(want[i].expire_at), `expiration equals Clerk's expire_at (${s.sessionId})`);
}
const adminList = (await raw(`/users/session/api?userId=${user}&limit=500`)).body;
c.ok(equal(adminList.map((s) => ApiSessionResponse$.inboundSchema.parse(s)), list), "admin ?userId= lists the same");

// One API session equals its list item.
for (const s of list) {
  const res = await sdk.getUsersSessionApiId({ id: s.sessionId });
  c.ok(res.statusCode === 200 && equal(res.apiSessionResponse, s), "getUsersSessionApiId equals the list item");
}

// The token route: 200 with a SessionResponse, which this SDK version does not
// expect (it declares 204 only): its SDKError carries the body, which the
// SDK's own schema accepts and which matches the API session.
const tokenErr = await c.rejects(() => sdk.getUsersSessionTokenId({ id: list[0].sessionId }), "the token route (SDK expects 204)");
c.ok(tokenErr instanceof SDKError && tokenErr.statusCode === 200, `SDKError on a 200: ${tokenErr}`);
const session = SessionResponse$.inboundSchema.parse(JSON.parse(tokenErr.body));
const { expiration, labels, sessionType, userId } = list[0];
c.ok(equal(session, { expiration, labels, sessionType, userId }), "SessionResponse equals the API session");
c.ok(!tokenErr.body.includes("token"), "no token in the body");

// Errors are SDKErrors with the status; the body is the ledger's envelope.
const other = (await raw("/v1/sessions?limit=500")).body.find((s) => s.user_id !== user);
const nonApi = clerk.find((s) => types[s.id] !== "API");
const cases = [
  [() => sdk.getUsersSessionApiId({ id: "sess_does_not_exist" }), 404, "NOT_FOUND", "unknown id"],
  [() => sdk.getUsersSessionApiId({ id: other.id }), 404, "NOT_FOUND", "another user's session (an unknown id to this key)"],
  [() => new Users({ serverURL: base, bearerAuth: "wrong-key" }).sessionAndAuthentication.getUsersSessionApi(), 401, "UNAUTHORIZED", "a wrong key"],
  [() => new Users({ serverURL: base, bearerAuth: admin }).sessionAndAuthentication.getUsersSessionApi(), 400, "INVALID_PARAMETER", "an admin key names no user"],
];
if (nonApi) cases.push([() => sdk.getUsersSessionApiId({ id: nonApi.id }), 404, "NOT_FOUND", "a non-API session"]);
for (const [call, status, code, what] of cases) {
  const e = await c.rejects(call, what);
  c.ok(e instanceof SDKError && e.statusCode === status, `${what}: ${status}, got ${e}`);
  c.ok(JSON.parse(e.body).error.code === code, `${what}: ${code}`);
}

c.done(`${list.length} API sessions of ${user} among ${clerk.length}`);
