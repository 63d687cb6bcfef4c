// The rep console: sign-in, availability, the incoming-transfer card, the call, the notes.
// It talks to /console/api with its session cookie and to LiveKit with livekit-client.
import {
  type Participant,
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
  type RemoteParticipant,
  type RemoteTrack,
  type TextStreamReader,
} from "livekit-client";

type Me = { id: string; name: string; email: string; presence: string; identity: string };
type Brief = {
  caller: string; company: string | null; phone: string | null; reason: string;
  facts: Record<string, string>; promised: string[]; transcript: string;
};
type Offer = {
  id: string; state: string; detail: string | null; brief: Brief; caller_room: string;
  consult_room: string; offered_at: string; seconds_left: number | null;
  answered_at: string | null; ended_at: string | null; notes: string | null;
  disposition: string | null;
};
type Join = { url: string; room: string; identity: string; token: string };

const POLL_MS = 1000;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

class ApiError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`/console/api${path}`, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail
      : Array.isArray(data.detail) ? data.detail.map((d: { msg: string }) => d.msg).join("; ")
      : `request failed (${response.status})`;
    throw new ApiError(response.status, detail);
  }
  return data as T;
}

// --- audio levels, for the rep's ear and the end-to-end test ----------------------------------
// Every remote audio track's level (dBFS, every 50 ms), kept on window.consoleAudio.samples.
type Sample = { at: number; identity: string; room: string; db: number };
const samples: Sample[] = [];
(window as unknown as { consoleAudio: { samples: Sample[] } }).consoleAudio = { samples };
let audioContext: AudioContext | null = null;

function meter(track: RemoteTrack, identity: string, room: string): () => void {
  audioContext ??= new AudioContext();
  const source = audioContext.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const buffer = new Float32Array(analyser.fftSize);
  const timer = window.setInterval(() => {
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (const v of buffer) sum += v * v;
    const rms = Math.sqrt(sum / buffer.length);
    samples.push({ at: Date.now(), identity, room, db: rms > 0 ? 20 * Math.log10(rms) : -120 });
    if (samples.length > 20000) samples.splice(0, 5000);
  }, 50);
  return () => { window.clearInterval(timer); source.disconnect(); };
}

function playAndMeter(room: Room, roomName: string): void {
  const stops = new Map<string, () => void>();
  room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
    if (track.kind !== Track.Kind.Audio) return;
    const element = track.attach();
    element.dataset.identity = participant.identity;
    document.body.appendChild(element);
    stops.set(track.sid ?? participant.identity, meter(track, participant.identity, roomName));
  });
  room.on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => {
    track.detach().forEach((element) => element.remove());
    stops.get(track.sid ?? "")?.();
  });
  room.on(RoomEvent.Disconnected, () => stops.forEach((stop) => stop()));
}

// --- screens -------------------------------------------------------------------------------------
const screens = ["set-password", "sign-in", "desk"];
function show(screen: string): void {
  for (const id of screens) $(id).hidden = id !== screen;
  $("topbar").hidden = screen !== "desk";
}
function panel(name: "idle" | "incoming" | "call" | "after-call"): void {
  for (const id of ["idle", "incoming", "call", "after-call"]) $(id).hidden = id !== name;
}

const OUTCOMES: Record<string, string> = {
  accepted: "took the call", declined: "passed", no_answer: "missed (time ran out)",
  caller_hung_up: "caller hung up on hold", withdrawn: "withdrawn", failed: "failed",
};
const GONE: Record<string, string> = {
  caller_hung_up: "The caller hung up while on hold.",
  no_answer: "Time ran out; the call went to the next rep.",
  withdrawn: "The call was withdrawn.",
  declined: "You passed on the call.",
};

class Console {
  me: Me | null = null;
  offer: Offer | null = null; // on screen: ringing, in a call, or waiting for notes
  consult: Room | null = null;
  call: Room | null = null;
  deadline = 0;
  poller = 0;
  // bumped by each availability change the rep makes: a poll sent before it, or answered
  // while the change is still on its way, would show the old presence and flip the switch back
  presenceChanges = 0;
  presencePending = 0;
  ticking = 0;

  async start(): Promise<void> {
    this.wire();
    const invite = new URLSearchParams(location.hash.slice(1)).get("invite");
    if (invite) return this.showInvite(invite);
    try {
      this.enter(await api<Me>("GET", "/me"));
    } catch (error) {
      this.signIn(error instanceof ApiError && error.status !== 401 ? error.message : "");
    }
  }

  wire(): void {
    $("sign-in-form").addEventListener("submit", (e) => { e.preventDefault(); void this.submitSignIn(); });
    $("set-password-form").addEventListener("submit", (e) => { e.preventDefault(); void this.submitPassword(); });
    $("sign-out").addEventListener("click", () => void this.signOut());
    $("available").addEventListener("change", () => void this.setAvailable());
    $("accept").addEventListener("click", () => void this.accept());
    $("decline").addEventListener("click", () => void this.decline());
    $("mute").addEventListener("click", () => void this.toggleMute());
    $("hang-up").addEventListener("click", () => void this.hangUp());
    $("notes-form").addEventListener("submit", (e) => { e.preventDefault(); void this.saveNotes(); });
    window.addEventListener("pagehide", () => {
      if (this.me) navigator.sendBeacon("/console/api/away");
    });
  }

  // --- signing in ---
  async showInvite(token: string): Promise<void> {
    show("set-password");
    try {
      const who = await api<{ name: string; email: string }>("POST", "/invites/check", { token });
      $("invite-name").textContent = who.name;
      $("invite-email").textContent = who.email;
    } catch (error) {
      this.signIn((error as Error).message);
      history.replaceState(null, "", location.pathname);
    }
  }

  async submitPassword(): Promise<void> {
    const token = new URLSearchParams(location.hash.slice(1)).get("invite") ?? "";
    const password = $<HTMLInputElement>("new-password").value;
    try {
      const me = await api<Me>("POST", "/invites/use", { token, password });
      history.replaceState(null, "", location.pathname);
      this.enter(me);
    } catch (error) {
      $("set-password-error").textContent = (error as Error).message;
    }
  }

  signIn(message: string): void {
    this.me = null;
    window.clearInterval(this.poller);
    show("sign-in");
    $("sign-in-error").textContent = message;
  }

  async submitSignIn(): Promise<void> {
    try {
      this.enter(await api<Me>("POST", "/sign-in", {
        email: $<HTMLInputElement>("email").value, password: $<HTMLInputElement>("password").value,
      }));
    } catch (error) {
      $("sign-in-error").textContent = (error as Error).message;
    }
  }

  async signOut(): Promise<void> {
    await api("POST", "/sign-out").catch(() => undefined);
    await this.leaveRooms();
    this.signIn("You are signed out.");
  }

  enter(me: Me): void {
    this.me = me;
    show("desk");
    $("who").textContent = `${me.name} · ${me.email}`;
    this.render(me);
    panel("idle");
    void this.refreshToday();
    window.clearInterval(this.poller);
    this.poller = window.setInterval(() => void this.poll(), POLL_MS);
    void this.poll();
  }

  render(me: Me): void {
    this.me = me;
    const pill = $("presence");
    pill.textContent = me.presence.replace("_", " ");
    pill.className = `pill ${me.presence}`;
    const box = $<HTMLInputElement>("available");
    box.checked = me.presence === "available" || me.presence === "on_call";
    box.disabled = me.presence === "on_call";
    $("idle-title").textContent = me.presence === "available" ? "Waiting for calls" : "You are not taking calls";
    $("idle-text").textContent = me.presence === "available"
      ? "A transfer appears here with the caller's brief. Keep this page open."
      : "Switch to Available to be offered live transfers.";
  }

  async setAvailable(): Promise<void> {
    const presence = $<HTMLInputElement>("available").checked ? "available" : "away";
    const change = ++this.presenceChanges;
    this.presencePending++;
    try {
      const me = await api<Me>("PUT", "/presence", { presence });
      if (change === this.presenceChanges) this.render(me);
    } catch (error) {
      this.handle(error);
    } finally {
      this.presencePending--;
    }
  }

  handle(error: unknown): void {
    if (error instanceof ApiError && error.status === 401) this.signIn(error.message);
    else $("notice").textContent = (error as Error).message;
  }

  // --- the offer on screen ---
  async poll(): Promise<void> {
    if (!this.me) return;
    const changes = this.presenceChanges;
    let state: { me: Me; offer: Offer | null };
    try {
      state = await api("GET", "/state");
    } catch (error) {
      this.handle(error);
      return;
    }
    if (changes === this.presenceChanges && !this.presencePending) this.render(state.me);
    const offer = state.offer;
    if (offer && offer.state === "ringing" && this.offer?.id !== offer.id) this.ring(offer);
    else if (offer && offer.state === "ringing" && offer.seconds_left !== null) this.countFrom(offer.seconds_left);
    else if (!offer && this.offer && this.offer.state === "ringing") await this.offerGone(this.offer.id);
  }

  ring(offer: Offer): void {
    this.offer = offer;
    $("notice").textContent = "";
    $("incoming-error").textContent = "";
    const b = offer.brief;
    const rows: [string, string][] = [
      ["Caller", b.caller], ["Company", b.company ?? "—"], ["Phone", b.phone ?? "—"],
      ["Why", b.reason],
      ...Object.entries(b.facts).map(([k, v]) => [k.replace(/_/g, " "), String(v)] as [string, string]),
      ["Promised", b.promised.length ? b.promised.join("; ") : "nothing yet"],
    ];
    const brief = $("brief");
    brief.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      return [dt, dd];
    }));
    $("brief-transcript").textContent = b.transcript || "(nothing said yet)";
    this.countFrom(offer.seconds_left ?? 0);
    window.clearInterval(this.ticking);
    this.ticking = window.setInterval(() => this.tick(), 200);
    panel("incoming");
    void this.joinConsult(offer);
  }

  countFrom(seconds: number): void {
    this.deadline = performance.now() + seconds * 1000;
    this.tick();
  }

  tick(): void {
    const left = Math.max(0, Math.ceil((this.deadline - performance.now()) / 1000));
    $("countdown").textContent = `${left} s`;
  }

  async joinConsult(offer: Offer): Promise<void> {
    $("consult-audio").textContent = "connecting to the brief…";
    try {
      const join = await api<Join>("POST", "/livekit-token", { room: offer.consult_room });
      const room = new Room();
      playAndMeter(room, offer.consult_room);
      this.consult = room;
      await room.connect(join.url, join.token);
      if (this.consult === room) $("consult-audio").textContent = "listening to the spoken brief";
    } catch (error) {
      $("consult-audio").textContent = `no audio brief: ${(error as Error).message}`;
    }
  }

  async offerGone(offerId: string): Promise<void> {
    window.clearInterval(this.ticking);
    await this.leaveConsult();
    let why = "The call is no longer offered.";
    try {
      const offer = await api<Offer>("GET", `/offers/${offerId}`);
      why = GONE[offer.state] ?? why;
    } catch { /* keep the general words */ }
    this.offer = null;
    panel("idle");
    $("notice").textContent = why;
    void this.refreshToday();
  }

  async accept(): Promise<void> {
    if (!this.offer) return;
    try {
      const answer = await api<{ offer: Offer; join: Join }>("POST", `/offers/${this.offer.id}/accept`);
      this.offer = answer.offer;
      window.clearInterval(this.ticking);
      await this.joinCall(answer.join);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        $("incoming-error").textContent = error.message;
        await this.offerGone(this.offer.id);
        $("notice").textContent = error.message;
      } else this.handle(error);
    }
  }

  async decline(): Promise<void> {
    if (!this.offer) return;
    const id = this.offer.id;
    await api("POST", `/offers/${id}/decline`).catch((error) => this.handle(error));
    await this.offerGone(id);
  }

  // --- the call ---
  async joinCall(join: Join): Promise<void> {
    const room = new Room();
    playAndMeter(room, join.room);
    this.transcribe(room);
    room.on(RoomEvent.Disconnected, () => void this.callEnded());
    this.call = room;
    $("call-with").textContent = this.offer?.brief.caller ?? "the caller";
    $("live-transcript").replaceChildren();
    $("call-status").textContent = "connecting…";
    panel("call");
    await room.connect(join.url, join.token);
    await room.localParticipant.setMicrophoneEnabled(true);
    $("call-status").textContent = "connected";
    await this.leaveConsult(); // only once in the caller's room, so the desk never sees a drop
  }

  transcribe(room: Room): void {
    const lines = new Map<string, HTMLElement>();
    room.registerTextStreamHandler("lk.transcription", async (reader: TextStreamReader, from) => {
      const attributes = reader.info.attributes ?? {};
      const segment = attributes["lk.segment_id"] ?? reader.info.id;
      const trackSid = attributes["lk.transcribed_track_id"];
      let speaker: Participant | undefined = room.getParticipantByIdentity(from.identity);
      for (const p of [room.localParticipant, ...room.remoteParticipants.values()]) {
        if (trackSid && p.trackPublications.has(trackSid)) speaker = p;
      }
      const who = !speaker ? from.identity
        : speaker.kind === ParticipantKind.SIP ? "Caller"
        : speaker.isAgent ? "Agent"
        : speaker === room.localParticipant ? "You" : speaker.name || speaker.identity;
      let line = lines.get(segment);
      if (!line) {
        line = document.createElement("p");
        lines.set(segment, line);
        $("live-transcript").appendChild(line);
      }
      let text = "";
      for await (const chunk of reader) {
        text += chunk;
        line.innerHTML = "";
        const b = document.createElement("b"); b.textContent = `${who}: `;
        line.append(b, document.createTextNode(text));
        $("live-transcript").scrollTop = $("live-transcript").scrollHeight;
      }
    });
  }

  async toggleMute(): Promise<void> {
    if (!this.call) return;
    const on = this.call.localParticipant.isMicrophoneEnabled;
    await this.call.localParticipant.setMicrophoneEnabled(!on);
    $("mute").textContent = on ? "Unmute" : "Mute";
    $("call-status").textContent = on ? "muted" : "connected";
  }

  async hangUp(): Promise<void> {
    if (!this.offer) return;
    await api("POST", `/offers/${this.offer.id}/hang-up`).catch((error) => this.handle(error));
    await this.call?.disconnect();
  }

  async callEnded(): Promise<void> {
    this.call = null;
    if (!this.offer) return;
    $("after-with").textContent = this.offer.brief.caller;
    $("notes-error").textContent = "";
    panel("after-call");
  }

  async saveNotes(): Promise<void> {
    if (!this.offer) return;
    const body = {
      notes: $<HTMLTextAreaElement>("notes").value,
      disposition: $<HTMLSelectElement>("disposition").value,
    };
    try {
      const saved = await api<{ crm_written: boolean; crm_error: string | null }>(
        "POST", `/offers/${this.offer.id}/notes`, body);
      this.offer = null;
      $<HTMLTextAreaElement>("notes").value = "";
      panel("idle");
      $("notice").textContent = saved.crm_written ? "Notes saved to the CRM."
        : `Notes saved here, but not in the CRM: ${saved.crm_error}`;
      void this.refreshToday();
    } catch (error) {
      $("notes-error").textContent = (error as Error).message;
    }
  }

  async leaveConsult(): Promise<void> {
    const room = this.consult;
    this.consult = null;
    $("consult-audio").textContent = "";
    await room?.disconnect();
  }

  async leaveRooms(): Promise<void> {
    await this.leaveConsult();
    await this.call?.disconnect();
  }

  // --- today's calls ---
  async refreshToday(): Promise<void> {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    try {
      const { calls } = await api<{ calls: Offer[] }>(
        "GET", `/calls?since=${encodeURIComponent(localIso(midnight))}`);
      $("today-empty").hidden = calls.length > 0;
      $("today-rows").replaceChildren(...calls.map((call) => {
        const row = document.createElement("tr");
        const cells = [
          new Date(call.offered_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
          [call.brief.caller, call.brief.company].filter(Boolean).join(", "),
          OUTCOMES[call.state] + (call.disposition ? ` · ${call.disposition.replace(/_/g, " ")}` : ""),
          call.notes ?? "",
        ];
        row.replaceChildren(...cells.map((text) => {
          const td = document.createElement("td"); td.textContent = text; return td;
        }));
        return row;
      }));
    } catch (error) {
      this.handle(error);
    }
  }
}

function localIso(date: Date): string {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T00:00:00` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`;
}

void new Console().start();
