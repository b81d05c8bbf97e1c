/**
 * Imported first by the page: zod must not compile validators with `new Function` (the page's
 * Content-Security-Policy allows no eval, and Trusted Types would report the attempt). Schemas read the
 * setting when they are built, at import time, so it is set before any other module is evaluated.
 */
import { config } from 'zod';

config({ jitless: true });
