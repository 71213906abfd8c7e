// ollama-js driven against a running bridge, one scenario per run, for tests/integration/test_api_js.py.
//
//   node client.mjs <scenario> <bridge-url> [json argument]
//
// Prints one JSON object on stdout: {"ok": true, ...results} or {"ok": false, "error", "name", ...partial}.
// The Python test scripts the fake backend before each run and checks both sides.
import { Ollama } from 'ollama'

const [scenario, host, extra] = process.argv.slice(2)
const ollama = new Ollama({ host })
const out = {}

const TOOL = {
  type: 'function',
  function: {
    name: 'fn',
    description: 'adds',
    parameters: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] },
  },
}
const USER = [{ role: 'user', content: 'hi' }]

async function collect(iterator) {
  const chunks = []
  for await (const chunk of iterator) chunks.push(chunk)
  return chunks
}

const scenarios = {
  // Case 44: a streamed chat ends with done:true (no "Did not receive done or success response").
  async chat_stream() {
    out.partial = []
    for await (const chunk of await ollama.chat({ model: 'm1', messages: USER, stream: true })) {
      out.partial.push(chunk)
    }
    out.chunks = out.partial
    delete out.partial
  },
  // Case 44: pull stream ends with status "success".
  async pull_stream() {
    out.statuses = (await collect(await ollama.pull({ model: 'm1', stream: true }))).map((p) => p.status)
    out.single = (await ollama.pull({ model: 'm1' })).status
  },
  // Tool round trip, step 1: the model asks for fn (the test scripts the fake to answer a call).
  async tool_first() {
    out.first = await ollama.chat({ model: 'm1', messages: [{ role: 'user', content: 'add one' }], tools: [TOOL] })
  },
  // Step 2: the client runs each call and sends the results back by tool_name, as ollama-js users do.
  async tool_second() {
    const assistant = JSON.parse(extra)
    const messages = [{ role: 'user', content: 'add one' }, assistant]
    for (const call of assistant.tool_calls) {
      messages.push({ role: 'tool', content: String(call.function.arguments.a + 1), tool_name: call.function.name })
    }
    out.second = await ollama.chat({ model: 'm1', messages, tools: [TOOL] })
  },
  // Streamed tool calls: collected from whichever chunk carries them.
  async tool_stream() {
    out.chunks = await collect(await ollama.chat({ model: 'm1', messages: USER, tools: [TOOL], stream: true }))
  },
  // A backend failure after the first tokens: ollama-js throws an Error from the iterator.
  async mid_stream_error() {
    out.partial = []
    for await (const chunk of await ollama.generate({ model: 'm1', prompt: 'x', stream: true })) {
      out.partial.push(chunk.response)
    }
  },
  // An unknown model: a ResponseError with the HTTP status, before any chunk.
  async unknown_model() {
    await collect(await ollama.chat({ model: 'nope', messages: USER, stream: true }))
  },
  // Everything a UI does on connect: version, list, show, ps, embed, generate.
  async catalogue() {
    out.version = (await ollama.version()).version
    out.models = (await ollama.list()).models.map((m) => ({ name: m.name, model: m.model, digest: m.digest }))
    out.show = await ollama.show({ model: 'alias-1' })
    out.ps = await ollama.ps()
    out.embed = await ollama.embed({ model: 'e1', input: ['a', 'b'] })
    out.generate = await ollama.generate({ model: 'm1:latest', prompt: 'hi' })
  },
}

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`)
  await scenarios[scenario]()
  process.stdout.write(JSON.stringify({ ok: true, ...out }))
} catch (err) {
  process.stdout.write(JSON.stringify({
    ok: false, name: err?.name, error: err?.error ?? err?.message, status: err?.status_code, ...out,
  }))
}
