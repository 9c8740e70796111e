export type UnitSystem = "metric" | "imperial";

const KM_PER_MILE = 1.609344;
const M_PER_FOOT = 0.3048;

export function formatDistance(metres: number, units: UnitSystem = "metric"): string {
  if (units === "imperial") return `${(metres / 1000 / KM_PER_MILE).toFixed(1)} mi`;
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(1)} km`;
}

export function formatElevation(metres: number, units: UnitSystem = "metric"): string {
  const value = units === "imperial" ? metres / M_PER_FOOT : metres;
  return `${Math.round(value).toLocaleString("en-GB")} ${units === "imperial" ? "ft" : "m"}`;
}

export function averageSpeed(metres: number, seconds: number, units: UnitSystem = "metric"): string {
  if (seconds <= 0) return "-";
  const kmh = (metres / seconds) * 3.6;
  return units === "imperial" ? `${(kmh / KM_PER_MILE).toFixed(1)} mph` : `${kmh.toFixed(1)} km/h`;
}
