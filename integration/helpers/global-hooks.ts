/**
 * Mocha root-level plugin: load with `--require integration/helpers/global-hooks.ts` (next to
 * `--import=tsx`). Global teardown runs once after the whole run, so one broker serves every
 * test file; tests start it lazily through getKafkaBootstrap(), so runs that never touch Kafka
 * never start one.
 */
import { stopSharedKafka } from './kafka.js';

export async function mochaGlobalTeardown(): Promise<void> {
  await stopSharedKafka();
}
