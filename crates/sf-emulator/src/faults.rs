//! Fault injection, for tests and benchmarks: probabilities of server errors,
//! per-record lock errors, added latency, hung and reset connections. A seed
//! makes the sequence of faults repeatable.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What to inject. Parsed from `--faults` (`503=0.2,lock=0.05,latency=200ms@0.1,seed=7`)
/// or posted as JSON to `/_emulator/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Probability of answering 503 SERVER_UNAVAILABLE.
    pub unavailable: f64,
    /// Probability of answering 500 UNKNOWN_EXCEPTION.
    pub server_error: f64,
    /// Probability of a permanent call-level refusal: 400 INVALID_OPERATION
    /// (what an integration user with an expired password or a revoked
    /// permission meets on every call).
    pub refused: f64,
    /// Probability, per record in a collections call or per single DML call, of UNABLE_TO_LOCK_ROW.
    pub lock: f64,
    /// Probability of adding `latency_spike_ms` to a call.
    pub latency_spike: f64,
    pub latency_spike_ms: u64,
    /// Probability of never answering (the client must time out).
    pub hang: f64,
    /// Probability of resetting the connection without an answer.
    pub reset: f64,
    /// Expire every access token once every this many API calls (0: never).
    pub expire_tokens_every: u64,
    /// Seed for the fault sequence; None means a random one.
    pub seed: Option<u64>,
}

impl FaultSpec {
    /// Parses `key=value` pairs separated by commas. Keys: `503`, `500`, `lock`,
    /// `latency=MSms@P`, `hang`, `reset`, `seed`.
    pub fn parse(spec: &str) -> Result<FaultSpec, String> {
        let mut f = FaultSpec::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault '{part}' is not key=value"))?;
            let prob = |v: &str| -> Result<f64, String> {
                let p: f64 = v
                    .parse()
                    .map_err(|_| format!("fault '{k}': '{v}' is not a number"))?;
                if (0.0..=1.0).contains(&p) {
                    Ok(p)
                } else {
                    Err(format!(
                        "fault '{k}': probability {p} is not between 0 and 1"
                    ))
                }
            };
            match k {
                "503" | "unavailable" => f.unavailable = prob(v)?,
                "500" | "server_error" => f.server_error = prob(v)?,
                "400" | "refused" => f.refused = prob(v)?,
                "lock" => f.lock = prob(v)?,
                "hang" => f.hang = prob(v)?,
                "reset" => f.reset = prob(v)?,
                "expire" => {
                    f.expire_tokens_every = v
                        .parse()
                        .map_err(|_| format!("fault expire: '{v}' is not a whole number of calls"))?
                }
                "seed" => {
                    f.seed = Some(
                        v.parse()
                            .map_err(|_| format!("fault seed '{v}' is not a whole number"))?,
                    )
                }
                "latency" => {
                    let (ms, p) = v.split_once('@').ok_or_else(|| {
                        "latency fault is MSms@P, e.g. latency=200ms@0.1".to_string()
                    })?;
                    f.latency_spike_ms = ms
                        .trim_end_matches("ms")
                        .parse()
                        .map_err(|_| format!("latency '{ms}' is not milliseconds"))?;
                    f.latency_spike = prob(p)?;
                }
                other => {
                    return Err(format!(
                    "unknown fault '{other}' (known: 503, 500, 400, lock, latency, hang, reset, expire, seed)"
                ))
                }
            }
        }
        Ok(f)
    }
}

/// What the dice decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    None,
    Unavailable,
    ServerError,
    Refused,
    Hang,
    Reset,
}

#[derive(Debug)]
pub struct Faults {
    pub spec: FaultSpec,
    rng: StdRng,
    pub injected: std::collections::BTreeMap<&'static str, u64>,
    calls: u64,
}

impl Faults {
    pub fn new(spec: FaultSpec) -> Faults {
        let rng = match spec.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Faults {
            spec,
            rng,
            injected: Default::default(),
            calls: 0,
        }
    }

    pub fn set(&mut self, spec: FaultSpec) {
        *self = Faults {
            injected: std::mem::take(&mut self.injected),
            ..Faults::new(spec)
        };
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen::<f64>() < p
    }

    fn note(&mut self, what: &'static str) {
        *self.injected.entry(what).or_default() += 1;
    }

    /// Decides the fate of one API call, and any extra latency.
    pub fn for_call(&mut self) -> (CallFault, Duration) {
        let extra = if self.roll(self.spec.latency_spike) {
            self.note("latency");
            Duration::from_millis(self.spec.latency_spike_ms)
        } else {
            Duration::ZERO
        };
        let fault = if self.roll(self.spec.hang) {
            self.note("hang");
            CallFault::Hang
        } else if self.roll(self.spec.reset) {
            self.note("reset");
            CallFault::Reset
        } else if self.roll(self.spec.unavailable) {
            self.note("503");
            CallFault::Unavailable
        } else if self.roll(self.spec.server_error) {
            self.note("500");
            CallFault::ServerError
        } else if self.roll(self.spec.refused) {
            self.note("400");
            CallFault::Refused
        } else {
            CallFault::None
        };
        (fault, extra)
    }

    /// Whether this call should find every access token expired.
    pub fn expire_now(&mut self) -> bool {
        self.calls += 1;
        let every = self.spec.expire_tokens_every;
        let hit = every > 0 && self.calls.is_multiple_of(every);
        if hit {
            self.note("expire");
        }
        hit
    }

    /// Whether one record (or single DML call) meets a lock error.
    pub fn lock(&mut self) -> bool {
        let hit = self.roll(self.spec.lock);
        if hit {
            self.note("lock");
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let f = FaultSpec::parse(
            "503=0.2, 500=0.1,lock=0.05,latency=250ms@0.3,hang=0.01,reset=0.02,expire=50,seed=7",
        )
        .unwrap();
        assert_eq!(f.expire_tokens_every, 50);
        assert_eq!(f.unavailable, 0.2);
        assert_eq!(f.server_error, 0.1);
        assert_eq!(f.lock, 0.05);
        assert_eq!((f.latency_spike_ms, f.latency_spike), (250, 0.3));
        assert_eq!(f.hang, 0.01);
        assert_eq!(f.reset, 0.02);
        assert_eq!(f.seed, Some(7));
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        assert!(FaultSpec::parse("503=2")
            .unwrap_err()
            .contains("between 0 and 1"));
        assert!(FaultSpec::parse("boom=0.1")
            .unwrap_err()
            .contains("unknown fault"));
        assert!(FaultSpec::parse("latency=5")
            .unwrap_err()
            .contains("MSms@P"));
    }

    #[test]
    fn a_seed_makes_faults_repeatable_and_rates_hold() {
        let spec = FaultSpec::parse("503=0.2,lock=0.1,seed=42").unwrap();
        let run = || {
            let mut f = Faults::new(spec.clone());
            (0..1000)
                .map(|_| (f.for_call().0, f.lock()))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let unavailable = a
            .iter()
            .filter(|(c, _)| *c == CallFault::Unavailable)
            .count();
        assert!(
            (150..250).contains(&unavailable),
            "about 20% of 1000, got {unavailable}"
        );
        let locks = a.iter().filter(|(_, l)| *l).count();
        assert!((60..140).contains(&locks), "about 10% of 1000, got {locks}");
    }

    #[test]
    fn each_kind_is_injected() {
        for (spec, want) in [
            ("hang=1", CallFault::Hang),
            ("reset=1", CallFault::Reset),
            ("503=1", CallFault::Unavailable),
            ("500=1", CallFault::ServerError),
        ] {
            let mut f = Faults::new(FaultSpec::parse(spec).unwrap());
            assert_eq!(f.for_call().0, want, "{spec}");
        }
        let mut f = Faults::new(FaultSpec::parse("expire=3").unwrap());
        assert_eq!((0..9).filter(|_| f.expire_now()).count(), 3);
        let mut f = Faults::new(FaultSpec::parse("latency=100ms@1").unwrap());
        assert_eq!(f.for_call(), (CallFault::None, Duration::from_millis(100)));
        assert_eq!(f.injected.get("latency"), Some(&1));
    }
}
