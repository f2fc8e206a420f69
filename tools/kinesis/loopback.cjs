// Preloaded with `node --require` by fraud.stream.emulator: kinesis-local hard-codes the
// listen address 0.0.0.0; this pins every server it opens to the loopback interface so the
// emulator is reachable from this machine only.
"use strict";
const net = require("net");
const LOOPBACK = "127.0.0.1";
const WILDCARD = new Set(["0.0.0.0", "::", "", undefined, null]);
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function patchedListen(...args) {
  if (args.length > 0 && typeof args[0] === "object" && args[0] !== null) {
    const options = Object.assign({}, args[0]);
    if (WILDCARD.has(options.host) && options.path === undefined) {
      options.host = LOOPBACK;
    }
    args[0] = options;
  } else if (typeof args[0] === "number" || typeof args[0] === "string") {
    if (typeof args[1] !== "string" || WILDCARD.has(args[1])) {
      args.splice(1, typeof args[1] === "string" ? 1 : 0, LOOPBACK);
    }
  }
  return listen.apply(this, args);
};
