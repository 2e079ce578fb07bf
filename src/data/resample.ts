// The resampler is pure code shared with headstart/web (audio exports resample in the browser as in training).
export { downmix, resample, RESAMPLER, STOPBAND_DB } from '../web/resample.js';
