// The official openai JS SDK against `flamingo serve`: the client most users arrive with.
//
//   node openai_chat.mjs BASE_URL IMAGE_PATH API_KEY_OR_DASH
//
// Lists the models and uses the id it gets; asks one question about the image without and
// then with streaming (temperature 0, so both must give the same text and usage); sends an
// image whose base64 is broken and expects the SDK's BadRequestError naming the field.
// An image costs the model's latents in usage.prompt_tokens: 64 for OpenFlamingo, fewer for
// the tiny test models, which say how many in /v1/models' meta.latents_per_image.
// Prints one JSON line ({..., "ok": true} and exit 0, or {"ok": false, "error": ...} and
// exit 1). Exit 2 for bad usage.

import OpenAI from 'openai';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';

const QUESTION = 'What is in this picture?';
const MAX_TOKENS = 16;
const DEFAULT_IMAGE_TOKENS = 64;  // OpenFlamingo's Perceiver latents, when meta lacks them

const EXT_MIME = {
  '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.gif': 'image/gif',
  '.bmp': 'image/bmp', '.webp': 'image/webp', '.tga': 'image/x-tga',
  '.ppm': 'image/x-portable-pixmap', '.pgm': 'image/x-portable-graymap',
  '.psd': 'image/vnd.adobe.photoshop', '.hdr': 'image/vnd.radiance',
};

// The file's own bytes decide the type where they can; the extension otherwise.
function mimeOf(bytes, path) {
  const starts = (...b) => b.every((x, i) => bytes[i] === x);
  if (starts(0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (starts(0x89, 0x50, 0x4e, 0x47)) return 'image/png';
  if (starts(0x47, 0x49, 0x46, 0x38)) return 'image/gif';
  if (starts(0x42, 0x4d)) return 'image/bmp';
  if (starts(0x52, 0x49, 0x46, 0x46) && bytes.subarray(8, 12).toString('latin1') === 'WEBP')
    return 'image/webp';
  const mime = EXT_MIME[extname(path).toLowerCase()];
  if (!mime) throw new Error(`cannot tell the image type of ${path}`);
  return mime;
}

function messagesFor(url) {
  return [{
    role: 'user',
    content: [
      { type: 'image_url', image_url: { url } },
      { type: 'text', text: QUESTION },
    ],
  }];
}

async function main() {
  const [baseUrl, imagePath, keyArg] = process.argv.slice(2);
  if (!baseUrl || !imagePath || !keyArg) {
    process.stderr.write('usage: node openai_chat.mjs BASE_URL IMAGE_PATH API_KEY_OR_DASH\n');
    process.exit(2);
  }
  // The SDK refuses an empty key; a server without --api-key ignores whatever is sent.
  const apiKey = keyArg === '-' ? 'no-key' : keyArg;
  const client = new OpenAI({
    baseURL: baseUrl.replace(/\/+$/, '') + '/v1',
    apiKey,
    maxRetries: 0,  // a retry would hide a 5xx or a dropped connection
    timeout: 120_000,
  });
  const failures = [];
  const check = (cond, what) => { if (!cond) failures.push(what); };

  const bytes = await readFile(imagePath);
  const dataUri = `data:${mimeOf(bytes, imagePath)};base64,${bytes.toString('base64')}`;

  const models = [];
  for await (const m of client.models.list()) models.push(m);
  if (models.length === 0) throw new Error('GET /v1/models listed no model');
  const model = models[0].id;
  check(typeof model === 'string' && model.length > 0, 'models[0].id is empty');
  check(models[0].object === 'model', `models[0].object is ${JSON.stringify(models[0].object)}`);
  const IMAGE_TOKENS = models[0].meta?.latents_per_image ?? DEFAULT_IMAGE_TOKENS;

  const request = { model, messages: messagesFor(dataUri), temperature: 0, max_tokens: MAX_TOKENS };

  // Non-streaming.
  const completion = await client.chat.completions.create(request);
  check(completion.object === 'chat.completion',
        `object is ${JSON.stringify(completion.object)}, not "chat.completion"`);
  check(Array.isArray(completion.choices) && completion.choices.length === 1,
        `${completion.choices?.length} choices, not 1`);
  const choice = completion.choices?.[0] ?? {};
  const text = choice.message?.content;
  check(typeof text === 'string', 'choices[0].message.content is not a string');
  check(choice.message?.role === 'assistant',
        `choices[0].message.role is ${JSON.stringify(choice.message?.role)}`);
  check(['stop', 'length'].includes(choice.finish_reason),
        `finish_reason is ${JSON.stringify(choice.finish_reason)}`);
  const usage = completion.usage;
  check(usage?.prompt_tokens > IMAGE_TOKENS, `usage.prompt_tokens ${usage?.prompt_tokens} <= ${IMAGE_TOKENS}`);
  check(usage?.completion_tokens >= 1 && usage?.completion_tokens <= MAX_TOKENS,
        `usage.completion_tokens ${usage?.completion_tokens} not in 1..${MAX_TOKENS}`);
  check(usage?.total_tokens === usage?.prompt_tokens + usage?.completion_tokens,
        'usage.total_tokens != prompt_tokens + completion_tokens');
  check(choice.finish_reason !== 'length' || usage?.completion_tokens === MAX_TOKENS,
        `finish_reason "length" after ${usage?.completion_tokens} of ${MAX_TOKENS} tokens`);

  // Streaming, with the usage chunk.
  const stream = await client.chat.completions.create({
    ...request, stream: true, stream_options: { include_usage: true },
  });
  let streamText = '';
  let streamFinish = null;
  let streamUsage = null;
  let nChunks = 0;
  let firstRole;
  const ids = new Set();
  const created = new Set();
  for await (const chunk of stream) {
    ids.add(chunk.id);
    created.add(chunk.created);
    check(chunk.object === 'chat.completion.chunk',
          `chunk ${nChunks}: object is ${JSON.stringify(chunk.object)}`);
    if (nChunks === 0) firstRole = chunk.choices?.[0]?.delta?.role;
    nChunks++;
    if (chunk.usage) {
      check(streamUsage === null, 'more than one chunk carries usage');
      check(Array.isArray(chunk.choices) && chunk.choices.length === 0,
            'the usage chunk has choices (must be [])');
      streamUsage = chunk.usage;
      continue;
    }
    check(streamUsage === null, 'a chunk came after the usage chunk');
    const c = chunk.choices?.[0];
    if (!c) { failures.push(`chunk ${nChunks - 1} has no choices and no usage`); continue; }
    if (typeof c.delta?.content === 'string') {
      check(streamFinish === null, 'content after finish_reason');
      streamText += c.delta.content;
    }
    if (c.finish_reason) {
      check(streamFinish === null, 'finish_reason sent twice');
      streamFinish = c.finish_reason;
    }
  }
  check(firstRole === 'assistant', `first chunk's delta.role is ${JSON.stringify(firstRole)}`);
  check(ids.size === 1, `chunks carry ${ids.size} different ids`);
  check(created.size === 1, `chunks carry ${created.size} different created times`);
  check(['stop', 'length'].includes(streamFinish), `stream finish_reason is ${JSON.stringify(streamFinish)}`);
  check(streamUsage !== null, 'no usage chunk despite stream_options.include_usage');
  check(streamUsage?.prompt_tokens > IMAGE_TOKENS,
        `stream usage.prompt_tokens ${streamUsage?.prompt_tokens} <= ${IMAGE_TOKENS}`);
  check(streamText === text,
        `streamed text ${JSON.stringify(streamText)} != non-streamed ${JSON.stringify(text)}`);
  check(streamFinish === choice.finish_reason,
        `stream finish_reason ${streamFinish} != non-streamed ${choice.finish_reason}`);
  check(streamUsage?.prompt_tokens === usage?.prompt_tokens &&
        streamUsage?.completion_tokens === usage?.completion_tokens,
        `stream usage ${JSON.stringify(streamUsage)} != non-streamed ${JSON.stringify(usage)}`);

  // Broken base64: a 400 invalid_request_error whose param is the image's field path.
  const badField = 'messages[0].content[0].image_url.url';
  let badImage = null;
  try {
    await client.chat.completions.create({
      ...request, messages: messagesFor('data:image/jpeg;base64,!!not*base64!!'),
    });
    failures.push('a data URI with invalid base64 was accepted');
  } catch (err) {
    if (!(err instanceof OpenAI.APIError)) throw err;
    badImage = { status: err.status, type: err.type, param: err.param, code: err.code,
                 message: err.error?.message };
    check(err instanceof OpenAI.BadRequestError,
          `bad image raised ${err.constructor.name} (status ${err.status}), not BadRequestError`);
    check(err.status === 400, `bad image: status ${err.status}, not 400`);
    check(err.type === 'invalid_request_error', `bad image: type ${JSON.stringify(err.type)}`);
    check(err.param === badField, `bad image: param ${JSON.stringify(err.param)}, not "${badField}"`);
    check(typeof err.error?.message === 'string' && err.error.message.length > 0,
          'bad image: empty error.message');
  }

  const result = {
    model, image_tokens: IMAGE_TOKENS, text, stream_text: streamText, finish_reason: choice.finish_reason,
    stream_finish_reason: streamFinish, usage, stream_usage: streamUsage, chunks: nChunks,
    bad_image: badImage,
  };
  if (failures.length) {
    console.log(JSON.stringify({ ...result, ok: false, error: failures.join('; ') }));
    process.exit(1);
  }
  console.log(JSON.stringify({ ...result, ok: true }));
}

main().catch((err) => {
  const detail = err instanceof OpenAI.APIError
    ? `${err.constructor.name} ${err.status}: ${err.message}` : String(err?.stack ?? err);
  console.log(JSON.stringify({ ok: false, error: detail }));
  process.exit(1);
});
