import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';

/** podman's code for "the container could not be run": container codes own the rest. */
export const RUN_FAILED = NATIVE_CONTRACT.exit.runFailed;
