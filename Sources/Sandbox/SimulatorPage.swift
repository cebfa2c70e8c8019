import Basics
import Foundation
import HTTPTypes
import Hummingbird

/// The browser phone at `GET /simulator` (development only): a feature phone that dials the
/// gateway's real Africa's Talking USSD route in the aggregator's own format, the number's SMS
/// inbox beside it, and (with Daraja simulated) a "Pay bill" control that has a simulated customer
/// pay the paybill.
///
/// Three files served by the gateway, no build step, nothing fetched from elsewhere. The Content
/// Security Policy allows this origin only and no inline script, and the script writes replies
/// with `textContent`: a reply is always text, never HTML.
public struct SimulatorPage: Sendable {
    /// What the page needs to know, served as `/simulator/settings.json`.
    public let settings: Settings

    public init(settings: Settings) {
        self.settings = settings
    }

    static let policy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/simulator") { _, _ in Self.file(Self.html, type: "text/html; charset=utf-8") }
        router.get("/simulator/simulator.js") { _, _ in Self.file(Self.script, type: "text/javascript; charset=utf-8") }
        router.get("/simulator/simulator.css") { _, _ in Self.file(Self.style, type: "text/css; charset=utf-8") }
        router.get("/simulator/settings.json") { _, _ -> Response in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = (try? encoder.encode(self.settings)) ?? Data("{}".utf8)
            return Self.file(String(decoding: body, as: UTF8.self), type: "application/json")
        }
    }

    static func file(_ text: String, type: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: type, .contentSecurityPolicy: Self.policy, .cacheControl: "no-store", HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            ],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }

    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Browser phone: USSD wallet gateway</title>
        <link rel="stylesheet" href="/simulator/simulator.css">
        <script src="/simulator/simulator.js" defer></script>
        </head>
        <body>
        <header>
          <h1>Browser phone</h1>
          <p>Dials this gateway's <code>/ussd/africastalking</code> route as Africa's Talking does.
          <span id="rail">M-Pesa</span>: <strong id="mode-mpesa">…</strong> · SMS: <strong id="mode-sms">…</strong></p>
        </header>
        <main>
          <section class="phone" aria-label="Phone">
            <div class="controls">
              <label>Phone number
                <input id="number" value="0712000001" inputmode="tel" autocomplete="off" list="numbers">
              </label>
              <datalist id="numbers">
                <option value="0712000001">Phone A</option>
                <option value="0712000002">Phone B</option>
                <option value="0712000003">Phone C</option>
              </datalist>
              <label>Code <input id="code" value="*384*96#" autocomplete="off"></label>
            </div>
            <div class="handset">
              <div id="screen" class="screen" aria-live="polite">Press Call to dial.</div>
              <input id="entry" class="entry" autocomplete="off" placeholder="Your answer" aria-label="Your answer">
              <div class="actions">
                <button id="call" class="call" type="button">Call</button>
                <button id="send" type="button" disabled>Send</button>
                <button id="end" class="end" type="button" disabled>End</button>
              </div>
              <div class="keypad" id="keypad">
                <button type="button">1</button><button type="button">2</button><button type="button">3</button>
                <button type="button">4</button><button type="button">5</button><button type="button">6</button>
                <button type="button">7</button><button type="button">8</button><button type="button">9</button>
                <button type="button">*</button><button type="button">0</button><button type="button">#</button>
              </div>
              <p id="status" class="status">No call.</p>
            </div>
          </section>
          <section class="inbox" aria-label="SMS inbox">
            <h2>SMS inbox of <span id="inbox-number"></span></h2>
            <ol id="inbox"></ol>
            <p id="inbox-note" class="note"></p>
            <div class="sms">
              <input id="sms-text" autocomplete="off" placeholder="Text a command, e.g. BAL 1234" aria-label="SMS text">
              <button id="sms-send" type="button">Send SMS</button>
            </div>
          </section>
          <section class="paybill" id="paybill" aria-label="Pay bill" hidden>
            <h2>Pay bill <span id="paybill-number"></span></h2>
            <p class="note">Pays the wallet's paybill as a customer does from the M-Pesa menu, the account being a wallet's phone
            number. The sandbox sends the confirmation to the gateway, which credits it only once Safaricom's Transaction Status
            (simulated) confirms the payment.</p>
            <div class="sms">
              <input id="paybill-account" autocomplete="off" placeholder="Account (the phone above)" aria-label="Account number">
              <input id="paybill-amount" autocomplete="off" inputmode="numeric" placeholder="Amount" aria-label="Amount" value="500">
              <button id="paybill-send" type="button">Pay bill</button>
            </div>
            <p id="paybill-status" class="note"></p>
          </section>
          <section class="rules" aria-label="Sandbox outcomes">
            <h2>Sandbox outcomes (by the amount's last digit)</h2>
            <table><thead><tr><th>Ends in</th><th>Deposit (STK push)</th><th>Withdrawal (B2C)</th></tr></thead>
            <tbody id="rules"></tbody></table>
          </section>
        </main>
        </body>
        </html>
        """

    static let style = """
        body { font-family: system-ui, sans-serif; margin: 0; background: #eef1f4; color: #1d2731; }
        header { padding: 12px 24px; background: #1d2731; color: #fff; }
        header h1 { margin: 0 0 4px; font-size: 20px; }
        header p { margin: 0; font-size: 14px; }
        header code { color: #9fd3ff; }
        main { display: grid; grid-template-columns: 340px 1fr; gap: 24px; padding: 24px; }
        .controls label { display: block; font-size: 13px; margin-bottom: 8px; }
        .controls input { display: block; width: 100%; box-sizing: border-box; padding: 6px; font-size: 15px; }
        .handset { background: #2b2f33; border-radius: 28px; padding: 22px; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
        .screen { background: #c7d9b7; color: #101810; font-family: ui-monospace, monospace; font-size: 14px; white-space: pre-wrap;
          min-height: 190px; padding: 10px; border-radius: 6px; border: 3px solid #111; overflow-wrap: anywhere; }
        .entry { width: 100%; box-sizing: border-box; margin-top: 10px; padding: 8px; font-size: 16px; font-family: ui-monospace, monospace; }
        .actions, .keypad { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin-top: 10px; }
        button { padding: 10px; font-size: 16px; border-radius: 8px; border: 0; background: #e4e7ea; cursor: pointer; }
        button:disabled { opacity: .45; cursor: default; }
        .call { background: #3cb371; color: #fff; }
        .end { background: #d9534f; color: #fff; }
        .status { color: #cfd6dc; font-size: 13px; margin: 10px 0 0; }
        .inbox ol { list-style: none; padding: 0; margin: 0; max-height: 460px; overflow-y: auto; }
        .inbox li { background: #fff; border-radius: 8px; padding: 8px 10px; margin-bottom: 8px; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
        .inbox .meta { font-size: 12px; color: #5b6670; }
        .inbox .text { white-space: pre-wrap; overflow-wrap: anywhere; margin-top: 2px; }
        .inbox .from-MPESA { border-left: 4px solid #3cb371; }
        .note { font-size: 13px; color: #5b6670; }
        .sms { display: flex; gap: 8px; margin-top: 12px; }
        .sms input { flex: 1; padding: 8px; font-size: 15px; }
        .paybill { grid-column: 1 / -1; }
        .paybill input { max-width: 14em; }
        .rules { grid-column: 1 / -1; }
        .rules table { border-collapse: collapse; background: #fff; font-size: 13px; width: 100%; }
        .rules th, .rules td { border: 1px solid #d5dbe0; padding: 6px 8px; text-align: left; vertical-align: top; }
        @media (max-width: 760px) { main { grid-template-columns: 1fr; } }
        """

    static let script = """
        "use strict";
        // The browser phone. Every reply is written with textContent: it is text, never HTML.
        const $ = (id) => document.getElementById(id);
        let settings = null;
        let session = null;      // { id, inputs: [] } while a call is open
        let busy = false;
        let hops = 0;            // replies shown so far, in body's data-hops (tests wait on it)

        // A number of the country served in its local or international form (0712345678,
        // 712345678, 254712345678, +254712345678) -> +254712345678; null otherwise.
        function msisdn(value) {
          const digits = value.replace(/[^0-9]/g, "");
          const country = settings.country;
          let national = null;
          if (digits.startsWith(country.code) && digits.length === country.code.length + country.length) national = digits.slice(country.code.length);
          else if (digits.startsWith("0") && digits.length === country.length + 1) national = digits.slice(1);
          else if (digits.length === country.length) national = digits;
          if (national === null || !country.prefixes.includes(national[0])) return null;
          return "+" + country.code + national;
        }

        function randomID(prefix) {
          const bytes = new Uint8Array(12);
          crypto.getRandomValues(bytes);
          return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
        }

        function setStatus(text) { $("status").textContent = text; }

        function setCall(open) {
          $("send").disabled = !open;
          $("end").disabled = !open;
          $("call").disabled = open;
        }

        async function hop() {
          const phone = msisdn($("number").value);
          if (!phone) { $("screen").textContent = "Enter a mobile number of the country served, such as " + settings.country.samples[0] + "."; session = null; setCall(false); return; }
          busy = true;
          $("send").disabled = true;
          const body = new URLSearchParams({
            sessionId: session.id, phoneNumber: phone, networkCode: "99999",
            serviceCode: $("code").value.trim(), text: session.inputs.join("*"),
          });
          try {
            const response = await fetch(settings.ussdPath, {
              method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body,
            });
            const reply = await response.text();
            if (!response.ok) {
              $("screen").textContent = "Connection problem (HTTP " + response.status + ")";
              session = null;
            } else if (reply.startsWith("CON ")) {
              $("screen").textContent = reply.slice(4);
            } else if (reply.startsWith("END ")) {
              $("screen").textContent = reply.slice(4);
              session = null;
            } else {
              $("screen").textContent = "MMI code invalid (the reply starts with neither CON nor END)";
              session = null;
            }
          } catch (error) {
            $("screen").textContent = "Connection problem: " + error.message;
            session = null;
          }
          busy = false;
          hops += 1;
          document.body.dataset.hops = String(hops);
          setCall(session !== null);
          setStatus(session ? "In a call: hop " + (session.inputs.length + 1) + "." : "Call ended.");
          if (session) $("entry").focus();
        }

        function call() {
          if (busy) return;
          session = { id: randomID("SIM_"), inputs: [] };
          $("entry").value = "";
          setStatus("Dialling " + $("code").value + "…");
          hop();
        }

        function send() {
          if (busy || !session) return;
          session.inputs.push($("entry").value);
          $("entry").value = "";
          hop();
        }

        function end() {
          session = null;
          setCall(false);
          $("screen").textContent = "Call ended.";
          setStatus("Call ended by you.");
        }

        let lastInbox = "";
        async function refreshInbox() {
          const phone = msisdn($("number").value);
          $("inbox-number").textContent = phone || "(no number)";
          if (!phone) return;
          try {
            const response = await fetch("/sandbox/inbox?phone=" + encodeURIComponent(phone));
            if (response.status === 404) {
              $("inbox-note").textContent = "The SMS sandbox is off: messages go to Africa's Talking.";
              return;
            }
            const data = await response.json();
            const key = phone + JSON.stringify(data.messages);
            if (key === lastInbox) return;
            lastInbox = key;
            const list = $("inbox");
            list.replaceChildren();
            for (const message of data.messages.slice().reverse()) {
              const item = document.createElement("li");
              item.className = "sms-message from-" + message.from.replace(/[^A-Za-z0-9]/g, "");
              const meta = document.createElement("div");
              meta.className = "meta";
              meta.textContent = message.from + " · " + new Date(message.receivedAt).toLocaleTimeString() + " · " +
                (message.status === "Success" ? "delivered" : message.status.toLowerCase());
              const text = document.createElement("div");
              text.className = "text";
              text.textContent = message.text;
              item.append(meta, text);
              list.append(item);
            }
            $("inbox-note").textContent = data.messages.length === 0 ? "No messages yet." : "";
          } catch (error) {
            $("inbox-note").textContent = "Inbox not reachable: " + error.message;
          }
        }

        async function sendSMS() {
          const phone = msisdn($("number").value);
          const text = $("sms-text").value;
          if (!phone || text.trim() === "") return;
          const now = new Date().toISOString().replace("T", " ").slice(0, 19);
          const body = new URLSearchParams({
            from: phone, to: settings.smsShortcode, text, date: now, id: randomID("SIMSMS_"), networkCode: "99999",
          });
          $("sms-text").value = "";
          const response = await fetch(settings.smsPath, {
            method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body,
          });
          setStatus(response.ok ? "SMS sent to " + settings.smsShortcode + "." : "SMS refused (HTTP " + response.status + ").");
        }

        async function payBill() {
          const account = $("paybill-account").value.trim() || $("number").value.trim();
          const amount = parseInt($("paybill-amount").value, 10);
          if (account === "" || !(amount > 0)) { $("paybill-status").textContent = "Enter an account and an amount."; return; }
          $("paybill-status").textContent = "Paying…";
          try {
            const response = await fetch(settings.paybillPath, {
              method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ account, amount }),
            });
            const data = await response.json();
            $("paybill-status").textContent = response.ok ? data.message : "Refused: " + (data.errorMessage || response.status);
          } catch (error) {
            $("paybill-status").textContent = "Pay bill failed: " + error.message;
          }
        }

        async function start() {
          settings = await (await fetch("/simulator/settings.json")).json();
          $("mode-mpesa").textContent = settings.mpesa;
          $("rail").textContent = settings.rail;
          if ($("number").value === "0712000001" && settings.country.samples[0] !== "0712000001") {
            $("number").value = settings.country.samples[0];
            $("numbers").replaceChildren(...settings.country.samples.map((number, index) => {
              const option = document.createElement("option");
              option.value = number;
              option.textContent = "Phone " + "ABC"[index];
              return option;
            }));
          }
          $("mode-sms").textContent = settings.sms;
          if (settings.serviceCodes.length > 0) $("code").value = settings.serviceCodes[0];
          for (const rule of settings.rules) {
            const row = document.createElement("tr");
            for (const cell of [rule.endsIn, rule.deposit, rule.withdrawal]) {
              const td = document.createElement("td");
              td.textContent = cell;
              row.append(td);
            }
            $("rules").append(row);
          }
          $("call").addEventListener("click", call);
          $("send").addEventListener("click", send);
          $("end").addEventListener("click", end);
          $("sms-send").addEventListener("click", sendSMS);
          if (settings.paybillPath) {
            $("paybill").hidden = false;
            $("paybill-number").textContent = settings.paybill ? settings.paybill : "";
            $("paybill-send").addEventListener("click", payBill);
          }
          $("entry").addEventListener("keydown", (event) => {
            if (event.key === "Enter") { event.preventDefault(); session ? send() : call(); }
          });
          for (const key of $("keypad").querySelectorAll("button")) {
            key.addEventListener("click", () => { $("entry").value += key.textContent; $("entry").focus(); });
          }
          $("number").addEventListener("change", () => { if (session) end(); lastInbox = ""; $("inbox").replaceChildren(); refreshInbox(); });
          document.body.dataset.ready = "true";
          refreshInbox();
          setInterval(refreshInbox, 1000);
        }

        document.addEventListener("DOMContentLoaded", start);
        """
}
