import type { FailureClass } from '../../shared/errors.ts';

/** Exit statuses that tell failure classes apart; stable, documented in client/README.md. */
export const EXIT = {
  OK: 0,
  USAGE: 1,
  MALFORMED: 2,
  SIGNATURE: 3,
  VALIDITY: 4,
  MISMATCH: 5,
  PROTOCOL: 6,
  UNAVAILABLE: 7,
  INTERNAL: 10,
} as const;

export function exitCodeForClass(failureClass: FailureClass): number {
  switch (failureClass) {
    case 'malformed':
      return EXIT.MALFORMED;
    case 'signature':
      return EXIT.SIGNATURE;
    case 'validity':
      return EXIT.VALIDITY;
    case 'mismatch':
      return EXIT.MISMATCH;
    case 'protocol':
      return EXIT.PROTOCOL;
    case 'unavailable':
      return EXIT.UNAVAILABLE;
    case 'usage':
      return EXIT.USAGE;
  }
}
