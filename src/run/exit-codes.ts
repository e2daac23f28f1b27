/** podman's code for "the container could not be run": container codes own the rest. */
export const RUN_FAILED = 125;
