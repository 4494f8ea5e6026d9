import { stopRecorded } from './stop.js';

await stopRecorded();
