// chat.js -- the chat page (README: "A chat in the browser").
//
// A client of the bridge's public contract and nothing else (README: "Topics
// and payloads"): what it does, any MQTT client can do. MQTT 5 over the
// broker's WebSocket listener, with MQTT.js (the global `mqtt`):
//   chat/<room>/msgs       live: messages, edits, deletes, read receipts
//   chat/<room>/history    the last page; older pages (before, next_before);
//                          after a reconnect, what was missed (after, next_after)
//   chat/<room>/send       text with a client_msg_id, so a resend is stored once
//   chat/<room>/edit, /delete, /read, /members, and chat/$rooms (your rooms)
//   chat/$bridge/+/status  the bridges' retained status documents
// Requests carry a Response Topic, reply/<user>/<random>, and Correlation
// Data. The sender is the payload's "user" (the bridge's identity "payload").
// /?room=lobby&user=alice opens the room lobby as alice.
'use strict';

const PREFIX = 'chat';          // the bridge's mqtt.topic_prefix
const PAGE = 50;                // messages per history page
const CATCH_UP = 200;           // messages per catch-up page (limits.history_max)
const ANSWER_MS = 10000;        // a request unanswered this long has failed
const READ_DELAY_MS = 300;      // a read marker waits this long for the next

const $ = id => document.getElementById(id);
const params = new URLSearchParams(location.search);
const me = (params.get('user') || '').trim();

let client = null;              // the MQTT.js client
let connected = false;
let session = 0;                // counts connections; work of an older one stops
let replyTopic = '';
let nextCorrelation = 1;
const waiting = new Map();      // correlation data -> { resolve, reject, timer }
const subscribed = new Set();   // topics subscribed on this connection
const rooms = new Map();        // your rooms: name -> { unread, last_id }
const bridges = new Map();      // a bridge's client id -> online
let view = null;                // the open room, see newView

// ==================== Small helpers ====================

function topic(room, leaf) {
    return `${PREFIX}/${room}/${leaf}`;
}

// A room is one topic level, or it cannot even be asked about; the bridge
// judges the rest of a name (invalid_room, invalid_user), and the page
// shows its answer.
function oneLevel(name) {
    return name !== '' && !/[/+#\u0000]/.test(name);
}

function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
}

function button(label, onClick) {
    const b = el('button', '', label);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
}

// The bridge's refusal as a person reads it, with its code.
function refusal(answer) {
    return `${answer.message || 'refused'} (${answer.error})`;
}

function showError(text) {
    $('error').textContent = text;
    $('error').hidden = false;
}

function clearError() {
    $('error').hidden = true;
}

function setState(id, text, good) {
    $(id).textContent = text;
    $(id).classList.toggle('good', good === true);
    $(id).classList.toggle('bad', good === false);
}

function atBottom() {
    const log = $('log');
    return log.scrollHeight - log.scrollTop - log.clientHeight < 60;
}

function scrollToEnd() {
    $('log').scrollTop = $('log').scrollHeight;
}

// ==================== The connection and requests ====================

function connect() {
    replyTopic = `reply/${encodeURIComponent(me)}/${randomId()}`;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    client = mqtt.connect(`${scheme}://${location.host}/mqtt`, {
        protocolVersion: 5,
        clean: true,            // nothing kept by the broker: a reconnect catches up
        clientId: `web-${randomId()}`,
        keepalive: 30,
        reconnectPeriod: 1000,
        connectTimeout: 5000,
        resubscribe: false,     // online() subscribes, then catches up
    });
    client.on('connect', () => {
        connected = true;
        setState('connection', 'connected', true);
        online(++session);
    });
    client.on('close', () => {
        if (connected) setState('connection', 'reconnecting', false);
        connected = false;
        subscribed.clear();
        for (const w of waiting.values()) {
            clearTimeout(w.timer);
            w.reject(new Error('the connection was lost'));
        }
        waiting.clear();
    });
    client.on('message', onMessage);
}

// Publish body to a request topic; resolves with the bridge's answer (a
// refusal too: {"ok":false,"error":...}), rejects when none comes.
function request(to, body) {
    return new Promise((resolve, reject) => {
        if (!connected) {
            reject(new Error('not connected to the broker'));
            return;
        }
        const correlation = String(nextCorrelation++);
        const timer = setTimeout(() => {
            waiting.delete(correlation);
            reject(new Error('no answer from the bridge'));
        }, ANSWER_MS);
        waiting.set(correlation, { resolve, reject, timer });
        client.publish(to, JSON.stringify(body), {
            qos: 1,
            properties: { responseTopic: replyTopic, correlationData: correlation },
        });
    });
}

async function subscribe(topics) {
    const todo = topics.filter(t => !subscribed.has(t));
    todo.forEach(t => subscribed.add(t));
    if (todo.length) await client.subscribeAsync(todo, { qos: 1 });
}

function onMessage(name, payload, packet) {
    let body = null;
    try {
        body = JSON.parse(new TextDecoder().decode(payload));
    } catch {
        // not JSON (an empty retained payload clears a status): null
    }
    if (name === replyTopic) {
        const data = packet.properties && packet.properties.correlationData;
        const correlation = data ? new TextDecoder().decode(data) : '';
        const w = waiting.get(correlation);
        if (!w) return;         // its request has failed already
        waiting.delete(correlation);
        clearTimeout(w.timer);
        w.resolve(body && typeof body === 'object'
            ? body : { ok: false, error: 'invalid_json', message: 'an unreadable answer' });
    } else if (name.startsWith(`${PREFIX}/$bridge/`)) {
        bridgeStatus(name.split('/').slice(-2, -1)[0], body);
    } else if (name.endsWith('/msgs') && body && typeof body === 'object') {
        const room = name.slice(PREFIX.length + 1, -'/msgs'.length);
        if (view && room === view.room) roomEvent(view, body);
        else otherRoomEvent(room, body);
    }
}

// The bridges' retained status documents; any one online will do.
function bridgeStatus(id, doc) {
    if (doc && typeof doc === 'object') bridges.set(id, doc.online === true);
    else bridges.delete(id);
    const states = [...bridges.values()];
    if (states.includes(true)) setState('bridge', 'bridge online', true);
    else if (states.length) setState('bridge', 'bridge offline', false);
    else setState('bridge', 'bridge: not seen yet');
}

// On every connection: subscribe, then the open room (its last page, or
// what was missed while away), then your rooms.
async function online(mine) {
    try {
        await subscribe([replyTopic, `${PREFIX}/$bridge/+/status`]);
        const refused = view.loaded ? await resume(view) : await loadRoom(view);
        if (refused) showLogin(refused);
        else if (await refreshRooms()) setState('connection', 'connected', true);
    } catch (err) {
        if (mine !== session || !connected) return;     // the next connection redoes it
        setState('connection', `${err.message}, trying again`, false);
        setTimeout(() => { if (mine === session && connected) online(mine); }, 3000);
    }
}

// ==================== Your rooms ====================

// chat/$rooms: the rooms with their unread counts; false when the bridge
// refused the name (the login form then shows why).
async function refreshRooms() {
    const answer = await request(`${PREFIX}/$rooms`, { user: me, limit: PAGE });
    if (answer.ok === false) {
        showLogin(refusal(answer));
        return false;
    }
    rooms.clear();
    for (const r of answer.rooms) rooms.set(r.room, { unread: r.unread, last_id: r.last_id });
    renderRooms();
    await subscribe([...rooms.keys()].filter(oneLevel).map(r => topic(r, 'msgs')));
    return true;
}

function renderRooms() {
    const names = [...rooms.keys()];
    if (view && !rooms.has(view.room)) names.unshift(view.room);
    $('rooms').replaceChildren(...names.map(name => {
        const a = el('a', view && name === view.room ? 'current' : '');
        a.href = '?' + new URLSearchParams({ room: name, user: me });
        a.append(el('span', 'name', `#${name}`));
        const unread = rooms.has(name) ? rooms.get(name).unread : 0;
        if (unread > 0 && !(view && name === view.room)) a.append(el('span', 'badge', String(unread)));
        a.addEventListener('click', e => {
            e.preventDefault();
            switchRoom(name);
        });
        const li = el('li');
        li.append(a);
        return li;
    }));
}

// An event in a room of yours that is not open: the badge.
function otherRoomEvent(name, ev) {
    const r = rooms.get(name);
    if (!r) return;
    if (Number.isInteger(ev.id) && !ev.deleted && !ev.edited && ev.id > r.last_id) {
        r.last_id = ev.id;
        if (ev.user !== me) r.unread++;
    } else if (ev.id === undefined && ev.user === me && ev.read >= r.last_id) {
        r.unread = 0;           // read elsewhere (another tab)
    }
    renderRooms();
}

async function switchRoom(name) {
    if (!oneLevel(name)) {
        showError('a room name is one topic level: no "/", "+" or "#"');
        return;
    }
    try {
        const back = view && view.room, refused = await openRoom(name);
        if (refused && back) await openRoom(back);
        if (refused) showError(refused);
        else await refreshRooms();
    } catch (err) {
        showError(err.message);
    }
}

// ==================== The open room ====================

function newView(room) {
    return {
        room,
        loaded: false,          // its last page came
        messages: new Map(),    // id -> message as shown
        elements: new Map(),    // id -> its <li>
        gone: new Set(),        // deleted ids: a late copy does not bring one back
        synced: 0,              // every id up to this one is known
        ahead: new Set(),       // known ids above synced
        nextBefore: undefined,  // older pages start below it; null: none
        loadingOlder: false,
        sending: new Map(),     // client_msg_id -> a message not yet stored
        receipts: new Map(),    // another user -> the id they read up to
        readSeen: 0,            // the newest id you have seen
        readSent: 0,            // your read marker as the bridge has it
        readTimer: null,
    };
}

// Show a room: its last page, then where the others have read up to. The
// bridge's refusal of the name, if it refused it.
function openRoom(name) {
    return loadRoom(showRoom(name));
}

// The room's view, empty until loadRoom: a person may type meanwhile.
function showRoom(name) {
    const v = view = newView(name);
    params.set('room', name);
    history.replaceState(null, '', '?' + params);
    seenObserver.disconnect();
    $('messages').replaceChildren();
    $('pending').replaceChildren();
    $('title').textContent = `#${name}`;
    $('composer').text.placeholder = `Message #${name}`;
    clearError();
    showOlder(v);
    renderRooms();
    return v;
}

async function loadRoom(v) {
    const name = v.room;
    await subscribe([topic(name, 'msgs')]);
    const page = await request(topic(name, 'history'), { limit: PAGE });
    if (view !== v) return '';
    if (page.ok === false) return refusal(page);
    page.messages.forEach(m => upsert(v, m));
    v.nextBefore = page.next_before;
    v.loaded = true;
    markSynced(v, page.messages.length ? page.messages[page.messages.length - 1].id : 0);
    if (rooms.has(name)) rooms.get(name).unread = 0;
    renderRooms();
    showOlder(v);
    scrollToEnd();
    await loadReceipts(v);
    fillScreen(v);
    resendPending(v);
    return '';
}

// After a reconnect: what was stored while away, then the edits and
// deletes among the newest, then the sends that got no answer.
async function resume(v) {
    await subscribe([topic(v.room, 'msgs')]);
    await catchUp(v);
    await refreshNewest(v);
    resendPending(v);
    scheduleRead(v);
    return '';
}

// history with "after": every message above what is known, page by page,
// until next_after is null.
async function catchUp(v) {
    let after = v.synced;
    for (;;) {
        const page = await request(topic(v.room, 'history'), { after, limit: CATCH_UP });
        if (view !== v) return;
        if (page.ok === false) throw new Error(refusal(page));
        const stick = atBottom();
        page.messages.forEach(m => upsert(v, m));
        if (stick) scrollToEnd();
        renderReceipts(v);
        if (page.next_after === null) {
            if (page.messages.length) markSynced(v, page.messages[page.messages.length - 1].id);
            return;
        }
        markSynced(v, page.next_after);
        after = page.next_after;
    }
}

// The newest page again: a message missing from it was deleted, one that
// differs was edited while the page was away.
async function refreshNewest(v) {
    const page = await request(topic(v.room, 'history'), { limit: PAGE, before: v.synced + 1 });
    if (view !== v || page.ok === false) return;
    if (!page.messages.length && page.next_before !== null) return;
    const from = page.next_before === null ? 0 : page.messages[0].id;
    const present = new Set(page.messages.map(m => m.id));
    for (const id of [...v.messages.keys()]) {
        if (id >= from && id <= v.synced && !present.has(id)) remove(v, id);
    }
    page.messages.forEach(m => upsert(v, m));
    renderReceipts(v);
}

async function loadOlder(v) {
    if (v.loadingOlder || v.nextBefore === null || v.nextBefore === undefined) return;
    v.loadingOlder = true;
    showOlder(v);
    try {
        const page = await request(topic(v.room, 'history'), { limit: PAGE, before: v.nextBefore });
        if (view !== v) return;
        if (page.ok === false) throw new Error(refusal(page));
        const log = $('log'), fromBottom = log.scrollHeight - log.scrollTop;
        page.messages.forEach(m => upsert(v, m));
        log.scrollTop = log.scrollHeight - fromBottom;  // what was on screen stays
        v.nextBefore = page.next_before;
        renderReceipts(v);
    } catch (err) {
        showError(err.message);
        return;
    } finally {
        v.loadingOlder = false;
        showOlder(v);
    }
    fillScreen(v);
}

// Older pages until the log can scroll (or the first message is shown).
function fillScreen(v) {
    const log = $('log');
    if (view === v && log.scrollHeight <= log.clientHeight + 80) loadOlder(v);
}

function showOlder(v) {
    const older = $('older');
    if (v.nextBefore === null) older.replaceChildren(`This is the beginning of #${v.room}.`);
    else if (v.loadingOlder) older.replaceChildren('loading older messages');
    else if (v.nextBefore === undefined) older.replaceChildren();
    else older.replaceChildren(button('older messages', () => loadOlder(v)));
}

// ==================== Messages ====================

// Every id up to id is known: move synced there, and over the ids known
// above it.
function markSynced(v, id) {
    if (id > v.synced) v.synced = id;
    for (const a of v.ahead) if (a <= v.synced) v.ahead.delete(a);
    noteKnown(v, 0);
}

function noteKnown(v, id) {
    if (id > v.synced) v.ahead.add(id);
    while (v.ahead.delete(v.synced + 1)) v.synced++;
}

function roomEvent(v, ev) {
    if (ev.id === undefined && Number.isInteger(ev.read)) {     // a read receipt
        if (ev.user === me) v.readSent = Math.max(v.readSent, ev.read);
        else v.receipts.set(ev.user, Math.max(v.receipts.get(ev.user) || 0, ev.read));
    } else if (Number.isInteger(ev.id) && !(ev.id < v.nextBefore)) {
        // (below nextBefore: older than the pages shown; scrolling back
        // brings such a message as it stands)
        const stick = atBottom();
        if (ev.deleted) remove(v, ev.id);
        else upsert(v, ev);
        if (stick) scrollToEnd();
    }
    renderReceipts(v);
}

// A message as the bridge sent it (live, in a page, edited): shown once,
// in id order.
function upsert(v, m) {
    if (m.user === me && v.sending.has(m.client_msg_id)) {
        v.sending.get(m.client_msg_id).li.remove();
        v.sending.delete(m.client_msg_id);
    }
    noteKnown(v, m.id);
    const old = v.messages.get(m.id);
    if (v.gone.has(m.id) || (old && old.edited && !(m.edited >= old.edited))) return;
    v.messages.set(m.id, m);
    const li = renderMessage(m);
    if (old) {
        v.elements.get(m.id).replaceWith(li);
    } else {
        let before = $('messages').lastElementChild;
        while (before && Number(before.dataset.id) > m.id) before = before.previousElementSibling;
        if (before) before.after(li);
        else $('messages').prepend(li);
    }
    v.elements.set(m.id, li);
    seenObserver.observe(li);
}

function remove(v, id) {
    v.gone.add(id);
    noteKnown(v, id);
    if (!v.messages.has(id)) return;
    v.elements.get(id).remove();
    v.messages.delete(id);
    v.elements.delete(id);
}

function renderMessage(m) {
    const li = el('li', m.user === me ? 'msg mine' : 'msg');
    li.dataset.id = m.id;
    const meta = el('div', 'meta');
    const time = el('time', '', new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    time.title = new Date(m.ts).toLocaleString();
    meta.append(el('span', 'user', m.user), time);
    if (m.edited) meta.append(el('span', 'edited', 'edited'));
    if (m.user === me) {        // only the author may edit or delete
        const actions = el('span', 'actions');
        actions.append(button('edit', () => startEdit(view, m.id)),
            button('delete', () => deleteMessage(view, m.id)));
        meta.append(actions);
    }
    li.append(meta, el('div', 'text', m.text));
    return li;
}

// Read receipts: "seen by bob" under the newest of your messages that bob
// has read.
function renderReceipts(v) {
    document.querySelectorAll('#messages .seen').forEach(e => e.remove());
    const readers = new Map();  // message id -> users
    for (const [user, read] of v.receipts) {
        let at = 0;
        for (const [id, m] of v.messages) if (m.user === me && id <= read && id > at) at = id;
        if (at) readers.set(at, [...(readers.get(at) || []), user]);
    }
    for (const [id, users] of readers) v.elements.get(id).append(el('div', 'seen', `seen by ${users.join(', ')}`));
}

// The room's members: where each of them has read up to.
async function loadReceipts(v) {
    let after;
    do {
        const page = await request(topic(v.room, 'members'), after ? { limit: 200, after } : { limit: 200 });
        if (view !== v || page.ok === false) return;
        for (const m of page.members) {
            if (m.user !== me && m.read > 0) v.receipts.set(m.user, Math.max(v.receipts.get(m.user) || 0, m.read));
        }
        after = page.next_after;
    } while (after);
    renderReceipts(v);
}

// ==================== Sending, editing, deleting ====================

function send(v, text) {
    const p = { cmid: randomId(), text, li: el('li', 'msg mine pending') };
    const meta = el('div', 'meta');
    meta.append(el('span', 'user', me), el('span', 'status', 'sending'));
    p.li.append(meta, el('div', 'text', text));
    $('pending').append(p.li);
    scrollToEnd();
    v.sending.set(p.cmid, p);
    sendPending(v, p);
}

// Sent again after each reconnect until the bridge answers, always with
// the same client_msg_id: the bridge stores it once.
function resendPending(v) {
    for (const p of v.sending.values()) if (!p.stored) sendPending(v, p);
}

async function sendPending(v, p) {
    let answer;
    try {
        answer = await request(topic(v.room, 'send'), { user: me, text: p.text, client_msg_id: p.cmid });
    } catch (err) {
        if (v.sending.has(p.cmid)) p.li.querySelector('.status').textContent = `not sent yet: ${err.message}`;
        return;
    }
    if (answer.ok === false) {
        p.li.remove();
        v.sending.delete(p.cmid);
        showError(refusal(answer));
        if ($('composer').text.value === '') $('composer').text.value = p.text;
        return;
    }
    p.stored = true;            // the message itself comes on msgs
    clearError();
}

function startEdit(v, id) {
    const m = v.messages.get(id);
    const text = v.elements.get(id).querySelector('.text');
    const input = el('input');
    input.value = m.text;
    input.setAttribute('aria-label', 'new text');
    input.addEventListener('keydown', e => {
        if (e.key === 'Escape') text.replaceChildren(m.text);
        if (e.key !== 'Enter') return;
        e.preventDefault();
        if (input.value === m.text) text.replaceChildren(m.text);
        else saveEdit(v, m, input.value);
    });
    text.replaceChildren(input);
    input.focus();
}

async function saveEdit(v, m, text) {
    try {
        const answer = await request(topic(v.room, 'edit'),
            { user: me, id: m.id, text, client_msg_id: randomId() });
        if (answer.ok === false) {
            showError(refusal(answer));
            return;
        }
        clearError();
        if (view === v) upsert(v, { ...m, text, edited: answer.edited });
        renderReceipts(v);
    } catch (err) {
        showError(err.message);
    }
}

async function deleteMessage(v, id) {
    try {
        const answer = await request(topic(v.room, 'delete'), { user: me, id });
        if (answer.ok === false) {
            showError(refusal(answer));
            return;
        }
        clearError();
        if (view === v) remove(v, id);
        renderReceipts(v);
    } catch (err) {
        showError(err.message);
    }
}

// ==================== Read markers ====================

// The messages on screen are read (half of one, or one that fills half the
// log): the newest of them goes to the bridge as your read marker, at most
// one request at a time.
const seenObserver = new IntersectionObserver(entries => {
    for (const e of entries) {
        const seen = e.intersectionRatio >= 0.5 ||
            (e.rootBounds && e.intersectionRect.height >= 0.5 * e.rootBounds.height);
        if (seen && view) view.readSeen = Math.max(view.readSeen, Number(e.target.dataset.id));
    }
    if (view) scheduleRead(view);
}, { root: $('log'), threshold: [0, 0.25, 0.5, 0.75, 1] });

function scheduleRead(v) {
    if (v.readTimer || v.readSeen <= v.readSent || document.visibilityState !== 'visible') return;
    v.readTimer = setTimeout(async () => {
        const id = v.readSeen;
        try {
            await request(topic(v.room, 'read'), { user: me, id });
            v.readSent = Math.max(v.readSent, id);  // a refused one is not asked again
        } catch {
            // sent again after the next reconnect (resume)
            return;
        } finally {
            v.readTimer = null;
        }
        if (view === v) scheduleRead(v);
    }, READ_DELAY_MS);
}

// ==================== The page ====================

function showLogin(error) {
    if (client) client.end(true);
    $('chat').hidden = true;
    $('login').hidden = false;
    $('login').user.value = me;
    $('login').room.value = params.get('room') || 'lobby';
    $('login-error').textContent = error;
}

$('login').addEventListener('submit', e => {
    e.preventDefault();
    const user = e.target.user.value.trim(), room = e.target.room.value.trim();
    if (!oneLevel(room)) $('login-error').textContent = 'a room name is one topic level: no "/", "+" or "#"';
    else location.search = '?' + new URLSearchParams({ room, user });
});

$('join').addEventListener('submit', e => {
    e.preventDefault();
    const name = e.target.room.value.trim();
    e.target.room.value = '';
    switchRoom(name);
});

$('composer').addEventListener('submit', e => {
    e.preventDefault();
    const text = e.target.text.value;
    if (text.trim() === '' || !view) return;
    e.target.text.value = '';
    send(view, text);
});

$('composer').text.addEventListener('keydown', e => {
    if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        $('composer').requestSubmit();
    }
});

$('log').addEventListener('scroll', () => {
    if (view && $('log').scrollTop < 80) loadOlder(view);
});

$('error').addEventListener('click', clearError);

document.addEventListener('visibilitychange', () => {
    if (view) scheduleRead(view);
});

if (!me || !oneLevel(params.get('room') || '')) {
    showLogin('');
} else {
    $('who').textContent = me;
    $('chat').hidden = false;
    showRoom(params.get('room'));
    connect();
}
