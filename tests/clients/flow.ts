// A client developer's first afternoon with the API, in TypeScript: openapi-fetch over the `paths`
// that openapi-typescript generated from /api/schema/. test_typescript_client.py puts schema.d.ts
// next to this file in a temporary folder, compiles both with tsc (strict: every request and
// response below is checked against the schema) and runs the result with node against a live
// server. It prints one JSON summary line on stdout, which the test reads.
//
// Environment: IMAGINEER_API_URL (http://127.0.0.1:port), IMAGINEER_API_TOKEN (a DRF token of an
// admin: uploads are admin-only), UPLOAD_PNG (a PNG file to upload).
import { readFile } from "node:fs/promises";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type GenerationJob = components["schemas"]["GenerationJob"];
type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];

const FINAL_STATUSES: ReadonlySet<GenerationJob["status"]> = new Set(["succeeded", "failed", "cancelled"]);
const FOLLOW_SECONDS = 120;

function setting(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function failure(step: string, status: number, error: ErrorEnvelope | undefined): Error {
  return new Error(`${step} answered ${status}: ${JSON.stringify(error)}`);
}

const client = createClient<paths>({
  baseUrl: setting("IMAGINEER_API_URL"),
  headers: { Authorization: `Token ${setting("IMAGINEER_API_TOKEN")}` },
});

async function listModelNames(): Promise<string[]> {
  const { data, error, response } = await client.GET("/api/generation/models/");
  if (data === undefined) throw failure("GET /api/generation/models/", response.status, error);
  return data.results.map((model) => model.name);
}

async function uploadImage(png: Uint8Array<ArrayBuffer>) {
  // The generated type of a binary field is a string: the request names the file there, and the
  // body serializer sends the bytes under that name as multipart/form-data (openapi-fetch then
  // leaves the Content-Type with its boundary to fetch).
  const upload: components["schemas"]["ImageUploadRequest"] = { file: "kite.png", prompt: "an uploaded kite" };
  const { data, error, response } = await client.POST("/api/images/", {
    body: upload,
    bodySerializer(body) {
      const form = new FormData();
      form.append("file", new Blob([png], { type: "image/png" }), body.file);
      if (body.prompt !== undefined) form.append("prompt", body.prompt);
      return form;
    },
  });
  if (data === undefined) throw failure("POST /api/images/", response.status, error);
  return {
    status: response.status,
    id: data.id,
    width: data.width,
    height: data.height,
    format: data.format,
    duplicate: data.duplicate,
  };
}

async function startJob(): Promise<{ job: GenerationJob; status: number; location: string | null }> {
  const { data, error, response } = await client.POST("/api/generation/jobs/", {
    body: { prompt: "a red kite", model: "tiny-sd", steps: 2, width: 64, height: 64, seed: 7 },
  });
  if (data === undefined) throw failure("POST /api/generation/jobs/", response.status, error);
  return { job: data, status: response.status, location: response.headers.get("Location") };
}

async function jobAt(location: string | null): Promise<number | null> {
  // The 202's Location is the job's own URL: a plain GET there (same token) answers the job.
  if (location === null) return null;
  const response = await fetch(location, { headers: { Authorization: `Token ${setting("IMAGINEER_API_TOKEN")}` } });
  const job = (await response.json()) as GenerationJob;
  return job.id;
}

async function followJob(job: GenerationJob): Promise<GenerationJob> {
  const deadline = Date.now() + FOLLOW_SECONDS * 1000;
  let current = job;
  while (!FINAL_STATUSES.has(current.status)) {
    if (Date.now() > deadline) throw new Error(`job ${job.id} still ${current.status} after ${FOLLOW_SECONDS}s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const { data, error, response } = await client.GET("/api/generation/jobs/{id}/", {
      params: { path: { id: job.id } },
    });
    if (data === undefined) throw failure(`GET /api/generation/jobs/${job.id}/`, response.status, error);
    current = data;
  }
  return current;
}

async function downloadImage(id: number) {
  const { data, error, response } = await client.GET("/api/images/{id}/file/", {
    params: { path: { id } },
    parseAs: "arrayBuffer",
  });
  if (data === undefined) throw failure(`GET /api/images/${id}/file/`, response.status, error);
  const bytes = new Uint8Array(data);
  return {
    status: response.status,
    content_type: response.headers.get("Content-Type"),
    size: bytes.length,
    signature: Array.from(bytes.slice(0, 8)),
  };
}

async function refusedJob() {
  // steps must be 1–150: the server's 400 is read as the typed error envelope.
  const { data, error, response } = await client.POST("/api/generation/jobs/", {
    body: { prompt: "a kite with no steps", model: "tiny-sd", steps: 0 },
  });
  if (data !== undefined || error === undefined) throw new Error(`a job with steps=0 answered ${response.status}`);
  const envelope: ErrorEnvelope = error;
  const fields = envelope.error.details["fields"];
  return {
    status: response.status,
    code: envelope.error.code,
    message: envelope.error.message,
    fields: typeof fields === "object" && fields !== null ? Object.keys(fields) : [],
    trace_id: envelope.error.trace_id,
    request_id: response.headers.get("X-Request-ID"),
  };
}

async function main(): Promise<void> {
  const models = await listModelNames();
  const upload = await uploadImage(new Uint8Array(await readFile(setting("UPLOAD_PNG"))));
  const started = await startJob();
  const locationAnswers = await jobAt(started.location);
  const finished = await followJob(started.job);
  const imageId = finished.image_ids[0];
  const download = imageId === undefined ? null : await downloadImage(imageId);
  const refused = await refusedJob();
  const summary = {
    models,
    upload,
    job: {
      start_status: started.status,
      location: started.location,
      url: started.job.url,
      location_answers: locationAnswers,
      id: finished.id,
      status: finished.status,
      error_message: finished.error_message,
      image_ids: finished.image_ids,
    },
    download,
    refused,
  };
  console.log(JSON.stringify(summary));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
