/** Every transport the end-to-end suite runs over. */
import { startServer, type Running } from './server.js';

export const TRANSPORTS: Record<string, () => Promise<Running>> = {
  tcp: () => startServer(),
};
