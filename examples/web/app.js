// The page of examples/web: a zserver Client in the browser, over WebSocket.
// `zserver serve` serves this file, index.html and the bundle (/zserver.js) on
// its WebSocket port, so the page connects back to where it came from.
import { BrowserWsTransport, Client, DataFrame } from '/zserver.js';

const $ = (id) => document.getElementById(id);
const show = (id, text) => ($(id).textContent = text);

const client = new Client({
  transport: new BrowserWsTransport(),
  host: location.hostname,
  port: Number(location.port) || (location.protocol === 'https:' ? 443 : 80),
  // After a server restart the page comes back by itself.
  reconnect: { initialDelay: 100, maxDelay: 2000 },
  requestTimeout: 10_000,
});

function status(text, cls) {
  show('status', text);
  $('status').className = cls;
}
client.on('connect', (peer) => {
  status('connected', 'connected');
  show('peer', `(${peer.info.remoteAddress}:${peer.info.remotePort})`);
});
client.on('disconnect', (reason) => status(`disconnected (${reason})`, 'disconnected'));
client.on('reconnecting', (attempt, delay) => status(`reconnecting, attempt ${attempt} in ${Math.round(delay)} ms`, 'disconnected'));

// Servers call their clients too: 'said' is what the server broadcasts.
client.directConsole('said', (text) => {
  const li = document.createElement('li');
  li.textContent = text;
  $('pushed').append(li);
});

/** Runs a button's action and shows its result or its error. */
function button(id, out, action) {
  $(id).addEventListener('click', async () => {
    show(out, '…');
    try {
      show(out, await action());
    } catch (err) {
      show(out, `${err.name}: ${err.message}`);
    }
  });
}

button('echo', 'echo-out', () => client.callConsole('echo', $('echo-text').value));
button('add', 'add-out', async () => {
  const reply = await client.call('add', new DataFrame().writeInt32(Number($('add-a').value)).writeInt32(Number($('add-b').value)));
  return String(reply.readInt32());
});
button('upload', 'upload-out', async () => {
  const file = $('file').files[0];
  if (!file) return 'choose a file first';
  const bytes = new Uint8Array(await file.arrayBuffer());
  const digest = await client.callBuffer('md5', bytes);
  return `${file.name}: ${bytes.length} bytes, md5 ${[...digest].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
});
$('say').addEventListener('click', () => client.sendConsole('say', $('say-text').value));

// Tests and curious readers reach the client from the console.
globalThis.zserverClient = client;
client.connect().catch((err) => {
  status(`cannot connect: ${err.message}`, 'disconnected');
});
