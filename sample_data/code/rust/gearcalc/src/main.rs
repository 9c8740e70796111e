//! gearcalc: gear development and speed tables for a bicycle drivetrain.
//!
//! Usage: gearcalc [--wheel MM] [--cadence RPM] RINGS COGS
//! where RINGS and COGS are comma-separated tooth counts, e.g. `gearcalc 34,50 11,13,15,17,19,21,24,28`.

use std::env;
use std::fmt;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Gear {
    ring: u32,
    cog: u32,
}

impl Gear {
    fn ratio(self) -> f64 {
        f64::from(self.ring) / f64::from(self.cog)
    }

    /// Metres travelled per crank revolution for a wheel of `wheel_mm` circumference.
    fn development(self, wheel_mm: f64) -> f64 {
        self.ratio() * wheel_mm / 1000.0
    }

    fn speed_kmh(self, wheel_mm: f64, cadence: f64) -> f64 {
        self.development(wheel_mm) * cadence * 60.0 / 1000.0
    }
}

impl fmt::Display for Gear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.ring, self.cog)
    }
}

#[derive(Debug)]
struct Args {
    wheel_mm: f64,
    cadence: Option<f64>,
    rings: Vec<u32>,
    cogs: Vec<u32>,
}

fn parse_list(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|t| t.trim().parse::<u32>().map_err(|e| format!("bad tooth count {t:?}: {e}")))
        .filter(|r| !matches!(r, Ok(0)))
        .collect()
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut wheel_mm = 2096.0;
    let mut cadence = None;
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--wheel" => {
                let v = it.next().ok_or("--wheel needs a value")?;
                wheel_mm = v.parse().map_err(|e| format!("bad wheel size {v:?}: {e}"))?;
            }
            "--cadence" => {
                let v = it.next().ok_or("--cadence needs a value")?;
                cadence = Some(v.parse().map_err(|e| format!("bad cadence {v:?}: {e}"))?);
            }
            "-h" | "--help" => return Err(String::from("usage: gearcalc [--wheel MM] [--cadence RPM] RINGS COGS")),
            _ => positional.push(arg),
        }
    }
    if positional.len() != 2 {
        return Err(String::from("expected RINGS and COGS, e.g. 34,50 11,13,15,17,19,21,24,28"));
    }
    Ok(Args { wheel_mm, cadence, rings: parse_list(&positional[0])?, cogs: parse_list(&positional[1])? })
}

fn main() -> ExitCode {
    let args = match parse_args(env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };

    print!("{:>6}", "");
    for cog in &args.cogs {
        print!("{cog:>7}");
    }
    println!();
    for &ring in &args.rings {
        print!("{ring:>6}");
        for &cog in &args.cogs {
            let g = Gear { ring, cog };
            match args.cadence {
                Some(rpm) => print!("{:>7.1}", g.speed_kmh(args.wheel_mm, rpm)),
                None => print!("{:>7.2}", g.development(args.wheel_mm)),
            }
        }
        println!();
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_of_50x25_is_twice_the_wheel() {
        let g = Gear { ring: 50, cog: 25 };
        assert!((g.development(2096.0) - 4.192).abs() < 1e-9);
    }

    #[test]
    fn zero_teeth_are_dropped() {
        assert_eq!(parse_list("0,11,12").unwrap(), vec![11, 12]);
    }

    #[test]
    fn display() {
        assert_eq!(Gear { ring: 34, cog: 28 }.to_string(), "34x28");
    }
}
