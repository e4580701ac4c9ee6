#!/usr/bin/env node
import { main } from './main.js';

// Exit explicitly: kafkajs and undici keep-alive timers must not hold a finished sidecar open.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `mesh-sidecar: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
