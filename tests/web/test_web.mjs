// test_web.mjs -- make test-web: the chat page (config/www, built into
// build/www) in headless Chromium driven by Playwright, against a real
// mosquitto serving it on its WebSocket listener, redis-server and the
// bridge (harness.mjs). Each person is a browser context of their own; a
// terminal user is mosquitto_pub. Every wait is bounded; nothing is timed.
//   CB_BRIDGE, CB_WWW      the bridge and the built page (build/...)
//   CB_CHROMIUM            the browser (/usr/bin/chromium)
//   CB_SCREENSHOT          the README's picture (build/web/chat.png)
//   CB_KEEP=1              keep the servers' directory and logs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Servers, Relay, waitFor } from './harness.mjs';

const WAIT_MS = 20000;          // the longest wait for the page to show something
const SHOT = process.env.CB_SCREENSHOT || 'build/web/chat.png';

let servers, relay, browser;
const contexts = [];

before(async () => {
    servers = new Servers(process.env.CB_WWW || 'build/www', process.env.CB_BRIDGE || 'build/chat-bridge');
    await servers.start();
    relay = new Relay(servers.wsPort);
    await relay.listen();
    // As root Chromium needs --no-sandbox; the rest keeps it off the
    // network (this machine has none) and quiet.
    browser = await chromium.launch({
        executablePath: process.env.CB_CHROMIUM || '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
});

after(async () => {
    for (const c of contexts) await c.close();
    if (browser) await browser.close();
    if (relay) await relay.close();
    if (servers) assert.equal(await servers.finish(), 0, 'the bridge stopped cleanly');
});

// A person's page, in a browser context of its own; through the relay when
// asked. Resolves once the room's last page is shown.
async function openPage(user, room, { viaRelay = false } = {}) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 640 } });
    contexts.push(context);
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', err => page.problems.push(err.message));
    await page.goto(servers.url(new URLSearchParams({ room, user }), viaRelay ? relay.port : servers.wsPort));
    await waitLoaded(page);
    return page;
}

// The room's first page came: the line above the messages says what is older.
function waitLoaded(page) {
    return page.waitForFunction(() => document.getElementById('older').textContent !== '',
        null, { timeout: WAIT_MS });
}

// The texts the page shows as stored messages, in order, with their ids.
function shown(page) {
    return page.$$eval('#messages .msg', lis => lis.map(li => ({
        id: Number(li.dataset.id),
        user: li.querySelector('.user').textContent,
        text: li.querySelector('.text').textContent,
    })));
}

async function texts(page) {
    return (await shown(page)).map(m => m.text);
}

// Until the page shows exactly these texts, in this order; then the ids
// must increase (no message twice, none out of order).
async function expectTexts(page, expected, what) {
    let last = [];
    try {
        await waitFor(async () => {
            last = await texts(page);
            return JSON.stringify(last) === JSON.stringify(expected);
        }, what, WAIT_MS);
    } catch (err) {
        assert.deepEqual(last, expected, `${err.message}: the page shows otherwise`);
    }
    const ids = (await shown(page)).map(m => m.id);
    ids.forEach((id, i) => assert.ok(i === 0 || id > ids[i - 1], `ids in order: ${ids}`));
    assert.deepEqual(page.problems, [], 'no script errors in the page');
}

async function say(page, text) {
    await page.fill('#composer textarea', text);
    await page.press('#composer textarea', 'Enter');
}

// The author's edit, as a person makes it: the message's edit button, the
// new text, Enter.
async function edit(page, text, newText) {
    const id = await page.locator('#messages .msg', { hasText: text }).getAttribute('data-id');
    const message = page.locator(`#messages .msg[data-id="${id}"]`);
    await message.getByRole('button', { name: 'edit' }).click();
    await message.getByRole('textbox', { name: 'new text' }).fill(newText);
    await message.getByRole('textbox', { name: 'new text' }).press('Enter');
}

// A message by user through the terminal, as the README's quick start does.
function terminal(room, user, text) {
    return servers.pub(`chat/${room}/send`, JSON.stringify({ user, text }));
}

// Until the room holds n messages in Redis (the bridge stored them).
function stored(room, n) {
    return waitFor(async () => Number(await servers.redisCli('get', `chatroom:${room}:messages`)) >= n,
        `${n} messages stored in ${room}`, WAIT_MS);
}

test('1. alice and bob see each other live and in order, and a terminal user', async () => {
    const alice = await openPage('alice', 'lobby');
    const bob = await openPage('bob', 'lobby');
    const said = [];
    const both = async text => {
        said.push(text);
        await expectTexts(alice, said, `alice's page to show "${text}"`);
        await expectTexts(bob, said, `bob's page to show "${text}"`);
    };
    await say(alice, 'Hi Bob! This chat runs in the browser, over MQTT.');
    await both('Hi Bob! This chat runs in the browser, over MQTT.');
    await say(bob, 'Hi Alice, I see you live: no reload needed.');
    await both('Hi Alice, I see you live: no reload needed.');
    await terminal('lobby', 'carol', 'Hello from a terminal: mosquitto_pub -t chat/lobby/send');
    await both('Hello from a terminal: mosquitto_pub -t chat/lobby/send');
    // Both at once: each page shows them in the bridge's order.
    await Promise.all([say(alice, 'The terminal and the browser are one chat.'), say(bob, 'And both pages agree on the order.')]);
    await waitFor(async () => (await texts(alice)).length === 5 && (await texts(bob)).length === 5,
        'both pages to show 5 messages', WAIT_MS);
    const a = await shown(alice);
    assert.deepEqual(await shown(bob), a, 'the same messages in the same order');
    await expectTexts(alice, a.map(m => m.text), 'order');
    assert.equal(await alice.textContent('#bridge'), 'bridge online');
    assert.equal(await alice.textContent('#connection'), 'connected');
});

test('6. the screenshot of the README: your rooms with unread counts, a read receipt', async () => {
    const [alice, bob] = contexts.slice(0, 2).map(c => c.pages()[0]);
    await terminal('random', 'alice', 'Anyone up for lunch?');
    await terminal('random', 'bob', 'Yes! 12:30?');
    await terminal('random', 'bob', 'At the usual place.');
    await stored('random', 3);
    await alice.reload();                       // her rooms now hold #random
    await waitLoaded(alice);
    await alice.locator('#rooms a', { hasText: '#random' }).locator('.badge', { hasText: '2' })
        .waitFor({ timeout: WAIT_MS });
    const before = await texts(alice);
    await say(bob, 'Let me fix my typpo');
    await expectTexts(alice, [...before, 'Let me fix my typpo'], 'bob\'s message');
    await edit(bob, 'Let me fix my typpo', 'Let me fix my typo: done, it says "edited".');
    await alice.locator('#messages .msg .edited').waitFor({ timeout: WAIT_MS });
    await alice.locator('#messages .seen', { hasText: 'seen by bob' }).waitFor({ timeout: WAIT_MS });
    mkdirSync(path.dirname(SHOT), { recursive: true });
    await alice.screenshot({ path: SHOT });
    console.log(`# screenshot: ${SHOT}`);
});

test('2. scroll-back loads older pages until the first message, nothing doubled', async () => {
    const all = Array.from({ length: 130 }, (_, i) => `history ${i + 1}`);
    await servers.pubLines('chat/history/send', all.map(text => JSON.stringify({ user: 'carol', text })));
    await stored('history', all.length);
    const bob = await openPage('bob', 'history');
    const first = await texts(bob);
    assert.deepEqual(first, all.slice(-50), 'the last page: the newest 50');
    // Scroll to the top until the page says it shows the beginning.
    await waitFor(async () => {
        await bob.locator('#log').evaluate(log => { log.scrollTop = 0; });
        return (await bob.textContent('#older')).startsWith('This is the beginning');
    }, 'the first message', WAIT_MS, 200);
    await expectTexts(bob, all, 'every message once, in order');
});

test('3. a broker restart: the page reconnects and catches up, every message once', async () => {
    const sent = [];
    const aliceSays = async text => {
        sent.push(text);
        await terminal('restart', 'alice', text);
    };
    for (let i = 1; i <= 5; i++) await aliceSays(`before the restart ${i}`);
    const bob = await openPage('bob', 'restart', { viaRelay: true });
    await expectTexts(bob, sent, 'the messages before the restart');
    // Bob's network goes away and the broker restarts; alice goes on.
    relay.hold();
    await servers.restartBroker();
    for (let i = 1; i <= 10; i++) await aliceSays(`while bob was away ${i}`);
    await say(bob, 'bob, typed while offline');     // kept, sent after the reconnect
    await stored('restart', sent.length);
    await waitFor(async () => (await bob.textContent('#connection')) === 'reconnecting',
        'bob\'s page to see the connection lost', WAIT_MS);
    assert.deepEqual(await texts(bob), sent.slice(0, 5), 'nothing new before the reconnect');
    relay.release();
    sent.push('bob, typed while offline');
    await expectTexts(bob, sent, 'every message once, in order, after the catch-up');
    for (let i = 1; i <= 3; i++) await aliceSays(`after the restart ${i}`);
    await expectTexts(bob, sent, 'live again');
    const count = await servers.redisCli('get', 'chatroom:restart:messages');
    assert.equal(Number(count), sent.length, 'bob\'s message stored once');
});

test('4. edit and delete by the author show on the other page; no controls for others', async () => {
    const alice = await openPage('alice', 'edits');
    const bob = await openPage('bob', 'edits');
    await say(alice, 'a message to edit');
    await say(alice, 'a message to delete');
    await say(bob, 'bob\'s own message');
    const all = ['a message to edit', 'a message to delete', 'bob\'s own message'];
    await expectTexts(alice, all, 'alice\'s page');
    await expectTexts(bob, all, 'bob\'s page');
    // Controls: on one's own messages only.
    const controls = async (page, text) => page.locator('#messages .msg', { hasText: text }).getByRole('button').count();
    assert.equal(await controls(bob, 'a message to edit'), 0, 'bob cannot edit alice\'s message');
    assert.equal(await controls(bob, 'a message to delete'), 0, 'bob cannot delete alice\'s message');
    assert.equal(await controls(alice, 'bob\'s own message'), 0, 'alice cannot touch bob\'s');
    assert.equal(await controls(alice, 'a message to edit'), 2, 'alice edits and deletes hers');
    assert.equal(await controls(bob, 'bob\'s own message'), 2, 'bob edits and deletes his');
    await edit(alice, 'a message to edit', 'a message edited');
    await alice.locator('#messages .msg', { hasText: 'a message to delete' })
        .getByRole('button', { name: 'delete' }).click();
    const now = ['a message edited', 'bob\'s own message'];
    await expectTexts(bob, now, 'the edit and the delete on bob\'s page');
    await expectTexts(alice, now, 'the edit and the delete on alice\'s page');
    assert.equal(await bob.locator('#messages .msg', { hasText: 'a message edited' }).locator('.edited').count(), 1);
});

test('5. refused input: the bridge\'s error is shown, nothing breaks', async () => {
    const alice = await openPage('alice', 'refusals');
    await say(alice, 'x'.repeat(5000));
    await alice.locator('#error', { hasText: 'text_too_long' }).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await texts(alice), [], 'nothing stored');
    assert.equal(await alice.locator('#pending .msg').count(), 0, 'nothing left sending');
    await say(alice, 'still fine after that');
    await expectTexts(alice, ['still fine after that'], 'the next message');
    assert.equal(await alice.isHidden('#error'), true, 'the error is gone once a message is stored');
    // A room the bridge refuses, from the page's "another room": alice
    // stays where she was.
    await alice.fill('#join input', 'a:b');
    await alice.press('#join input', 'Enter');
    await alice.locator('#error', { hasText: 'invalid_room' }).waitFor({ timeout: WAIT_MS });
    await expectTexts(alice, ['still fine after that'], 'alice back in her room');
    assert.equal(await alice.textContent('#title'), '#refusals');
    // A name the bridge refuses, then a room: the form says why.
    for (const [query, code] of [['room=refusals&user=bob%20smith', 'invalid_user'],
        ['room=a%3Ab&user=bob', 'invalid_room']]) {
        const context = await browser.newContext();
        contexts.push(context);
        const page = await context.newPage();
        await page.goto(`http://127.0.0.1:${servers.wsPort}/?${query}`);
        await page.locator('#login-error', { hasText: code }).waitFor({ timeout: WAIT_MS });
        assert.equal(await page.isVisible('#login'), true);
    }
});

test('7. the bridge\'s status document: the page sees it go offline', async () => {
    const bob = await openPage('bob', 'lobby');
    await bob.locator('#bridge', { hasText: 'bridge online' }).waitFor({ timeout: WAIT_MS });
    assert.equal(await servers.stopBridge(), 0, 'the bridge stopped cleanly');
    await bob.locator('#bridge', { hasText: 'bridge offline' }).waitFor({ timeout: WAIT_MS });
});
