/** Subscriptions as async iterables (defined in the client core, shared by every transport). */
export { Subscription, type SubscribeOptions } from './core/subscription.js';
