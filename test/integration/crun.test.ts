import { runtimeSuite } from './suite.js';

runtimeSuite('crun');
