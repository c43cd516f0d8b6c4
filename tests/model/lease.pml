/*
 * clusvc: leases, self-fencing and relocation -- "at most one member runs
 * a service", checked with spin (tests/model_check.rs runs it in CI).
 *
 * One service, two members. Member 0 runs it and holds a lease in the
 * store; its agent renews the lease every RENEW ticks; its watchdog (a
 * process apart from the agent, so it outlives an agent killed with -9)
 * stops the service once the agent's deadline passes: the time the agent
 * SENT its last acknowledged renewal + TTL - MARGIN, on the agent's clock.
 * The store expires the lease TTL after it RECEIVED the last renewal, on
 * its clock. The controller, having seen the expiry, waits GRACE on its
 * clock, then starts the service on member 1.
 *
 * Time is real time in ticks (a clock process advances it when nothing
 * else can move). Clocks have no common offset; each measured interval may
 * come out DRIFT ticks longer or shorter in real time (bounded clock-rate
 * drift). Messages take 0..DMAX ticks each way or are lost. The agent may
 * crash at any tick (its watchdog lives on); a stop takes 0..STOP ticks.
 * The store refuses to renew an expired lease.
 *
 * Safe when GRACE > STOP - MARGIN + 3*DRIFT (docs/cluster.md). CI checks
 * the documented values and also that spin finds the violation one tick
 * below the bound (so the check can fail).
 */

#ifndef TTL
#define TTL 4
#endif
#ifndef RENEW
#define RENEW 2
#endif
#ifndef MARGIN
#define MARGIN 1
#endif
#ifndef STOP
#define STOP 1
#endif
#ifndef DRIFT
#define DRIFT 1
#endif
#ifndef GRACE
#define GRACE 4
#endif
#ifndef DMAX
#define DMAX 1
#endif
#ifndef TMAX
#define TMAX 16
#endif

byte now = 0;
bool runs0 = true;      /* member 0 runs the service */
bool runs1 = false;     /* member 1 runs the service */
bool lease = true;      /* member 0's lease exists in the store */
byte expiry = TTL;      /* real time at which the store expires it */
byte deadline = TTL - MARGIN; /* the watchdog's deadline, real time */
bool agent_up = true;
byte crash_checked = 255;

/* A real-time length for an interval of `length` on a drifting clock. */
inline drifted(result, length) {
  if
  :: result = length - DRIFT
  :: result = length
  :: result = length + DRIFT
  fi
}

active proctype Clock() {
  do
  :: timeout && now < TMAX -> now++
  :: timeout && now >= TMAX -> break
  od
}

/* Member 0's agent: renews, and records the deadline of each ack. */
active proctype Agent() {
  byte next = 0, sent, d, span, arrive, back;
  do
  :: agent_up && now >= next ->
     /* one crash decision per tick */
     if
     :: crash_checked != now -> crash_checked = now;
        if
        :: agent_up = false; break
        :: skip
        fi
     :: else -> skip
     fi;
     sent = now;
     drifted(span, RENEW);
     next = now + span;
     if
     :: skip  /* the request is lost */
     :: select(d : 0 .. DMAX);
        arrive = now + d;
        (now >= arrive);
        atomic {
          if
          :: lease && now < expiry ->
             drifted(span, TTL);
             expiry = now + span;
             /* the ack: lost, or back after a delay */
             if
             :: skip
             :: select(d : 0 .. DMAX);
                back = now + d
             fi
          :: else -> back = 0  /* expired: refused */
          fi
        };
        if
        :: back > 0 ->
           (now >= back);
           atomic {
             drifted(span, TTL - MARGIN);
             if
             :: sent + span > deadline -> deadline = sent + span
             :: else -> skip
             fi
           }
        :: else -> skip
        fi
     fi
  od
}

/* The store expires the lease. */
active proctype Store() {
  (lease && now >= expiry) -> lease = false
}

/* Member 0's watchdog: stops the service at the deadline. */
active proctype Watchdog() {
  byte took, done;
  (runs0 && now >= deadline);
  select(took : 0 .. STOP);
  done = now + took;
  (now >= done);
  runs0 = false
}

/* The controller: expiry seen (after a watch delay), GRACE, relocate. */
active proctype Controller() {
  byte d, span, seen, go;
  (!lease);
  select(d : 0 .. DMAX);
  seen = now + d;
  (now >= seen);
  drifted(span, GRACE);
  go = now + span;
  (now >= go);
  atomic {
    runs1 = true;
    assert(!runs0)
  }
}

ltl at_most_one { [] !(runs0 && runs1) }
