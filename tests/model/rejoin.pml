/*
 * clusvc: a member coming back after its lease expired -- "an agent told
 * to keep what it runs never keeps a service a controller moved", checked
 * with spin (tests/model_check.rs runs it in CI).
 *
 * Member 0's agent kept its service while no lease held it (failsafe: the
 * servers were away; its peers' answers cover that period, not this
 * model). Two things then race, each a store transaction:
 *
 *  - the controller, seeing member 0 dead (from a view as stale as you
 *    like: only its transaction counts), marks it vacated -- only while
 *    member 0 has no lease -- and moves the service to member 1;
 *  - the grant of member 0's next lease, in two transactions: the first
 *    creates the lease only while there is no mark and answers "keep";
 *    failing that, the second creates it (removing the mark) and answers
 *    "stop": the agent stops what it kept before acting again.
 *
 * Leases expire again at any time (the agent is then back to failsafe,
 * under its peers' rules), the grant is retried, the controller acts at
 * most once per loss. The claim: never does a live lease whose grant said
 * keep go with the service kept on member 0 and moved to member 1.
 *
 * -DNO_MARK_CHECK (the grant ignores the mark) and -DNO_LEASE_CHECK (the
 * controller marks whatever the lease) must each break it (so the check
 * can fail).
 */

bool lease = false;   /* member 0's lease key exists */
bool mark = false;    /* /clusvc/vacated/member0 exists */
bool kept = false;    /* the live lease's grant said keep */
bool runs0 = true;    /* member 0's agent runs the service */
bool runs1 = false;   /* the controller moved it to member 1 */

active proctype Grant() {
  do
  :: atomic { !lease && !mark -> lease = true; kept = true }
  :: atomic {
       !lease ->
       lease = true;
#ifdef NO_MARK_CHECK
       kept = true
#else
       if
       :: mark -> mark = false; kept = false; runs0 = false
       :: else -> kept = true
       fi
#endif
     }
  :: atomic { lease -> lease = false; kept = false }   /* expired again */
  od
}

active proctype Controller() {
  do
  :: atomic {
#ifdef NO_LEASE_CHECK
       !runs1 ->
#else
       !lease && !runs1 ->
#endif
       mark = true; runs1 = true
     }
  :: runs1 -> break
  od
}

/* Runs at any point of any interleaving. */
active proctype Monitor() {
  assert(!(lease && kept && runs0 && runs1))
}
