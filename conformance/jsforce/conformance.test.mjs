// Drives sf-emulator with the real jsforce client. The emulator's URL comes
// from SF_EMULATOR_URL (the Rust test `conformance` starts one and runs this).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import jsforce from 'jsforce';

const base = process.env.SF_EMULATOR_URL;
if (!base) throw new Error('SF_EMULATOR_URL is not set: run this through `cargo test -p sf-emulator --test conformance`');
const version = '67.0';
const clientId = 'local-client';
const clientSecret = 'local-secret';
const redirectUri = 'http://127.0.0.1:9/callback';

/** Logs in on the emulator's authorize page the way a browser would, returns the redirect. */
async function approve(authorizeUrl, action = 'approve', password = 'emulator') {
  const page = await fetch(authorizeUrl);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<form method="post"/);
  const form = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    form.set(m[1], m[2].replaceAll('&amp;', '&').replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>'));
  }
  form.set('username', 'admin@example.com');
  form.set('password', password);
  form.set('action', action);
  const res = await fetch(new URL('/services/oauth2/authorize', base), { method: 'POST', body: form, redirect: 'manual' });
  return res;
}

let conn; // an OAuth (web server flow) connection with a refresh token

test('OAuth web-server flow with PKCE: authorize page, approve, code exchange', async () => {
  const oauth2 = new jsforce.OAuth2({ loginUrl: base, clientId, clientSecret, redirectUri, useVerifier: true });
  const state = crypto.randomUUID();
  const url = oauth2.getAuthorizationUrl({ scope: 'api refresh_token', state });
  assert.match(url, /code_challenge=/);
  const res = await approve(url);
  assert.equal(res.status, 302);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.searchParams.get('state'), state);
  const code = location.searchParams.get('code');
  assert.ok(code, 'the callback carries a code');
  conn = new jsforce.Connection({ oauth2, version });
  const info = await conn.authorize(code);
  assert.ok(conn.accessToken);
  assert.ok(conn.refreshToken, 'scope refresh_token gives a refresh token');
  assert.equal(conn.instanceUrl, base);
  assert.match(info.id, /^005/);
  assert.match(info.organizationId, /^00D/);
  // The code is single-use.
  await assert.rejects(oauth2.requestToken(code), (e) => e.name === 'invalid_grant');
});

test('OAuth: denying consent redirects with access_denied; a wrong password stays on the page', async () => {
  const oauth2 = new jsforce.OAuth2({ loginUrl: base, clientId, clientSecret, redirectUri });
  const denied = await approve(oauth2.getAuthorizationUrl({ state: 's1' }), 'deny');
  const loc = new URL(denied.headers.get('location'));
  assert.equal(loc.searchParams.get('error'), 'access_denied');
  assert.equal(loc.searchParams.get('state'), 's1');
  const wrong = await approve(oauth2.getAuthorizationUrl({ state: 's2' }), 'approve', 'nope');
  assert.equal(wrong.status, 200);
  assert.match(await wrong.text(), /check your username and password/);
});

test('OAuth password grant through jsforce login', async () => {
  const c = new jsforce.Connection({ oauth2: { loginUrl: base, clientId, clientSecret }, version });
  const info = await c.login('admin@example.com', 'emulator');
  assert.match(info.id, /^005/);
  await assert.rejects(
    new jsforce.Connection({ oauth2: { loginUrl: base, clientId, clientSecret }, version }).login('admin@example.com', 'bad'),
    (e) => e.name === 'invalid_grant' && /authentication failure/.test(e.message),
  );
});

test('metadata create of an object and upsert of fields', async () => {
  const obj = await conn.metadata.create('CustomObject', {
    fullName: 'Request__c', label: 'Request', pluralLabel: 'Requests',
    nameField: { type: 'AutoNumber', label: 'Request Number', displayFormat: 'REQ-{000000}' },
    deploymentStatus: 'Deployed', sharingModel: 'ReadWrite',
  });
  assert.equal(String(obj.success), 'true');
  assert.equal(obj.fullName, 'Request__c');
  const fields = await conn.metadata.upsert('CustomField', [
    { fullName: 'Request__c.RequestId__c', label: 'Request ID', type: 'Text', length: 255, externalId: true, unique: true },
    { fullName: 'Request__c.Title__c', label: 'Title', type: 'Text', length: 20 },
    { fullName: 'Request__c.Summary__c', label: 'Summary', type: 'Html', length: 32768, visibleLines: 10 },
    { fullName: 'Request__c.Account__c', label: 'Account', type: 'Lookup', referenceTo: 'Account', relationshipName: 'Requests', deleteConstraint: 'SetNull' },
  ]);
  assert.equal(fields.length, 4);
  for (const r of fields) {
    assert.equal(String(r.success), 'true', JSON.stringify(r));
    assert.equal(String(r.created), 'true');
  }
  const again = await conn.metadata.upsert('CustomField', { fullName: 'Request__c.Title__c', label: 'Title', type: 'Text', length: 20 });
  assert.equal(String(again.created), 'false');
  const read = await conn.metadata.read('CustomObject', 'Request__c');
  assert.equal(read.fullName, 'Request__c');
  assert.equal(read.nameField.type, 'AutoNumber');
  const dup = await conn.metadata.create('CustomObject', { fullName: 'Request__c', label: 'R', pluralLabel: 'Rs', nameField: { type: 'Text', label: 'N' } });
  assert.equal(String(dup.success), 'false');
  assert.equal(dup.errors[0].statusCode, 'DUPLICATE_DEVELOPER_NAME');
  assert.match(dup.errors[0].message, /already a Custom Object named Request__c/);
});

test('new fields stay invisible until a permission set grants them', async () => {
  let d = await conn.describe('Request__c');
  assert.ok(!d.fields.some((f) => f.name === 'RequestId__c'), 'no FLS yet: absent from describe');
  await assert.rejects(conn.query('SELECT RequestId__c FROM Request__c'), (e) => e.name === 'INVALID_FIELD');
  const ps = await conn.sobject('PermissionSet').create({ Name: 'Request_Sync', Label: 'Request Sync' });
  assert.ok(ps.success);
  const perms = ['RequestId__c', 'Title__c', 'Summary__c', 'Account__c'].map((f) => ({
    attributes: { type: 'FieldPermissions' }, ParentId: ps.id, SobjectType: 'Request__c', Field: `Request__c.${f}`, PermissionsRead: true, PermissionsEdit: true,
  }));
  const created = await conn.sobject('FieldPermissions').create(perms, { allOrNone: true });
  assert.ok(created.every((r) => r.success), JSON.stringify(created));
  const me = await conn.identity();
  await conn.sobject('PermissionSetAssignment').create({ AssigneeId: me.user_id, PermissionSetId: ps.id });
  d = await conn.describe('Request__c');
  const byName = Object.fromEntries(d.fields.map((f) => [f.name, f]));
  assert.equal(byName.RequestId__c.externalId, true);
  assert.equal(byName.RequestId__c.unique, true);
  assert.equal(byName.Summary__c.type, 'textarea');
  assert.equal(byName.Summary__c.htmlFormatted, true);
  assert.deepEqual(byName.Account__c.referenceTo, ['Account']);
  assert.equal(byName.Account__c.relationshipName, 'Account__r');
  const acct = await conn.describe('Account');
  assert.ok(acct.childRelationships.some((r) => r.childSObject === 'Request__c' && r.relationshipName === 'Requests__r'));
});

test('create, and upsert by external id: 201 created then 200 updated', async () => {
  const acc = await conn.sobject('Account').create({ Name: 'Acme Corp', Website: 'acme.io' });
  assert.ok(acc.success);
  assert.equal(acc.id.length, 18);
  const first = await conn.sobject('Request__c').upsert({ RequestId__c: 'REQ-1', Title__c: 'Printer', Account__c: acc.id }, 'RequestId__c');
  assert.equal(first.success, true);
  assert.equal(first.created, true);
  const second = await conn.sobject('Request__c').upsert({ RequestId__c: 'REQ-1', Title__c: 'Printer fixed' }, 'RequestId__c');
  assert.equal(second.created, false);
  assert.equal(second.id, first.id);
  const rec = await conn.sobject('Request__c').retrieve(first.id);
  assert.equal(rec.Title__c, 'Printer fixed');
  assert.match(rec.Name, /^REQ-\d{6}$/);
  const q = await conn.query("SELECT Id, Title__c, Account__r.Name FROM Request__c WHERE RequestId__c = 'REQ-1'");
  assert.equal(q.records[0].Account__r.Name, 'Acme Corp');
});

test('upsert by sObject Collections with per-record results in order', async () => {
  const records = [
    { RequestId__c: 'REQ-1', Title__c: 'again' },
    { RequestId__c: 'REQ-2', Title__c: 'new' },
    { RequestId__c: 'REQ-3', Title__c: 'this title is far too long for twenty' },
  ];
  const res = await conn.sobject('Request__c').upsert(records, 'RequestId__c', { allOrNone: false });
  assert.equal(res.length, 3);
  assert.equal(res[0].success, true);
  assert.equal(res[0].created, false);
  assert.equal(res[1].created, true);
  assert.equal(res[2].success, false);
  assert.equal(res[2].errors[0].statusCode, 'STRING_TOO_LONG');
  assert.deepEqual(res[2].errors[0].fields, ['Title__c']);
});

test('query with paging through nextRecordsUrl', async () => {
  for (let i = 0; i < 13; i++) {
    const batch = Array.from({ length: 200 }, (_, j) => ({ attributes: { type: 'Contact' }, LastName: `Person ${i * 200 + j}`, Email: `p${i * 200 + j}@bulk.example` }));
    const r = await conn.sobject('Contact').create(batch, { allOrNone: true });
    assert.ok(r.every((x) => x.success));
  }
  const first = await conn.query("SELECT Id, Email FROM Contact WHERE Email LIKE '%@bulk.example'");
  assert.equal(first.totalSize, 2600);
  assert.equal(first.done, false);
  assert.equal(first.records.length, 2000);
  const more = await conn.queryMore(first.nextRecordsUrl);
  assert.equal(more.done, true);
  assert.equal(more.records.length, 600);
  const all = await conn.query("SELECT Id FROM Contact WHERE Email LIKE '%@bulk.example'").run({ autoFetch: true, maxFetch: 10000 });
  assert.equal(all.records.length, 2600);
  const count = await conn.query("SELECT COUNT() FROM Contact WHERE Email LIKE '%@BULK.example'");
  assert.equal(count.totalSize, 2600);
});

test('describe global and limits, with api usage from Sforce-Limit-Info', async () => {
  const g = await conn.describeGlobal();
  assert.ok(g.sobjects.some((s) => s.name === 'Request__c' && s.custom));
  const limits = await conn.limits();
  assert.ok(limits.DailyApiRequests.Max > 0);
  assert.ok(limits.DailyApiRequests.Remaining < limits.DailyApiRequests.Max);
  assert.ok(conn.limitInfo.apiUsage.used > 0);
  assert.equal(conn.limitInfo.apiUsage.limit, limits.DailyApiRequests.Max);
});

test('error shapes become jsforce errors: invalid field, string too long, malformed query', async () => {
  await assert.rejects(conn.sobject('Contact').create({ LastName: 'X', Nope__c: 1 }), (e) => e.name === 'INVALID_FIELD');
  await assert.rejects(conn.sobject('Request__c').create({ RequestId__c: 'REQ-9', Title__c: 'x'.repeat(21) }), (e) => e.name === 'STRING_TOO_LONG' && /max length=20/.test(e.message));
  await assert.rejects(conn.sobject('Contact').create({ FirstName: 'No last name' }), (e) => e.name === 'REQUIRED_FIELD_MISSING');
  await assert.rejects(conn.query('SELECT Id FROM'), (e) => e.name === 'MALFORMED_QUERY');
  await assert.rejects(conn.query('SELECT Id FROM Nope__c'), (e) => e.name === 'INVALID_TYPE');
  await assert.rejects(conn.sobject('Request__c').create({ RequestId__c: 'REQ-1' }), (e) => e.name === 'DUPLICATE_VALUE');
});

test('an expired session is refreshed transparently with the refresh token', async () => {
  let refreshed = false;
  conn.on('refresh', () => { refreshed = true; });
  const before = conn.accessToken;
  const r = await fetch(new URL('/_emulator/expire-tokens', base), { method: 'POST' });
  assert.equal(r.status, 200);
  const q = await conn.query("SELECT Id FROM Request__c WHERE RequestId__c = 'REQ-2'");
  assert.equal(q.totalSize, 1);
  assert.ok(refreshed, 'jsforce saw a 401 INVALID_SESSION_ID and refreshed');
  assert.notEqual(conn.accessToken, before);
});

test('revoking the refresh token ends the session', async () => {
  const c = new jsforce.Connection({ oauth2: conn.oauth2, instanceUrl: conn.instanceUrl, accessToken: conn.accessToken, refreshToken: conn.refreshToken, version });
  await c.oauth2.revokeToken(c.refreshToken);
  await assert.rejects(c.query('SELECT Id FROM Account'), (e) => /INVALID_SESSION_ID|invalid_grant|expired/.test(`${e.name} ${e.message}`));
});
