//! `mysimbdp gen`: synthetic reviews in the Amazon US TSV format, deterministic for a seed, with a
//! realistic shape and a known amount of disorder, so that demos and tests know in advance which
//! rows are on time, late or malformed.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tsv;

/// Where to write, and what to write there.
#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// File to write; a `.gz` suffix writes it gzip-compressed.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub shape: Shape,
}

/// The generated data set's size and disorder; the same shape and seed give the same bytes.
#[derive(clap::Args, Debug, Clone)]
pub struct Shape {
    /// Number of reviews (data lines after the header).
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Seed of the random generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of distinct products, reviewed with Zipf-skewed popularity.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub products: u32,
    /// First review date, YYYY-MM-DD.
    #[arg(long, default_value = "2015-01-01", value_parser = parse_start_date)]
    pub start_date: i64,
    /// Number of days the review dates span, spread evenly over the rows.
    #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Fraction of rows dated 1 day before the newest date so far (on time for a 2-day delay).
    #[arg(long, default_value_t = 0.05, value_parser = parse_fraction)]
    pub out_of_order: f64,
    /// Fraction of rows dated 100 to 300 days before the newest date so far, all of them in the
    /// last 60% of the file.
    #[arg(long, default_value_t = 0.002, value_parser = parse_fraction)]
    pub late: f64,
    /// Fraction of rows that are malformed: a bad star_rating or review_date, an empty
    /// product_id, or a truncated line, in rotation.
    #[arg(long, default_value_t = 0.002, value_parser = parse_fraction)]
    pub malformed: f64,
}

/// Late rows appear only after this share of the file, when every partition has seen enough
/// newer rows that they are late whatever the interleaving.
const LATE_ZONE_START: f64 = 0.4;
/// Fewest and most days a late row is behind the newest date so far.
const LATE_DAYS: (i64, i64) = (100, 300);

fn parse_start_date(text: &str) -> Result<i64, String> {
    tsv::parse_date(text.as_bytes()).ok_or_else(|| format!("`{text}` is not a date YYYY-MM-DD"))
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("`{text}` is not a fraction between 0 and 1")),
    }
}

/// Writes the file and prints what it holds.
pub fn run(args: GenArgs) -> anyhow::Result<()> {
    args.shape.check()?;
    let summary = write_file(&args.out, &args.shape)?;
    eprintln!("{}", summary.report(&args.out, &args.shape));
    Ok(())
}

/// Creates `path` (gzip when it ends in `.gz`) and generates the rows into it.
fn write_file(path: &Path, shape: &Shape) -> anyhow::Result<Summary> {
    let context = || format!("cannot write {}", path.display());
    let file = File::create(path).with_context(context)?;
    let buffered = BufWriter::with_capacity(1 << 20, file);
    if path.extension().is_some_and(|ext| ext == "gz") {
        let mut gzip = GzEncoder::new(buffered, Compression::fast());
        let summary = generate(shape, &mut gzip).with_context(context)?;
        gzip.finish()
            .and_then(|mut inner| inner.flush())
            .with_context(context)?;
        Ok(summary)
    } else {
        let mut plain = buffered;
        let summary = generate(shape, &mut plain).with_context(context)?;
        plain.flush().with_context(context)?;
        Ok(summary)
    }
}

/// Writes the header and `shape.rows` reviews to `out`.
pub fn generate(shape: &Shape, out: &mut impl Write) -> anyhow::Result<Summary> {
    shape.check()?;
    writeln!(out, "{}", tsv::HEADER)?;
    let mut generator = Generator::new(shape);
    let mut line = String::with_capacity(4096);
    for index in 0..shape.rows {
        line.clear();
        generator.write_row(index, &mut line);
        out.write_all(line.as_bytes())?;
    }
    Ok(generator.summary)
}

impl Shape {
    /// Refuses fractions that leave no room for normal rows (late rows only fit in the last 60%).
    pub fn check(&self) -> anyhow::Result<()> {
        let late_share = self.late / (1.0 - LATE_ZONE_START);
        let total = self.malformed + self.out_of_order + late_share;
        anyhow::ensure!(
            total <= 1.0,
            "--malformed + --out-of-order + --late/{:.1} must not exceed 1 (it is {total:.3})",
            1.0 - LATE_ZONE_START
        );
        Ok(())
    }
}

/// What was generated, for the closing report and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub out_of_order: u64,
    pub late: u64,
    pub malformed: u64,
    /// Earliest and latest valid review dates written, as days since 1970-01-01.
    pub dates: Option<(i64, i64)>,
}

impl Summary {
    fn report(&self, path: &Path, shape: &Shape) -> String {
        let dates = match self.dates {
            Some((first, last)) => {
                format!("{} .. {}", tsv::format_date(first), tsv::format_date(last))
            }
            None => "none".to_owned(),
        };
        format!(
            "gen: wrote {rows} rows to {path} (seed {seed})\n  \
             products      {products} (Zipf s={ZIPF_EXPONENT})\n  \
             review dates  {dates}\n  \
             out-of-order  {ooo} (1 day behind the newest date so far)\n  \
             late          {late} ({min} to {max} days behind the newest date so far)\n  \
             malformed     {malformed} (star_rating, review_date, empty product_id, truncated)",
            rows = self.rows,
            path = path.display(),
            seed = shape.seed,
            products = shape.products,
            ooo = self.out_of_order,
            late = self.late,
            min = LATE_DAYS.0,
            max = LATE_DAYS.1,
            malformed = self.malformed,
        )
    }

    fn record_date(&mut self, day: i64) {
        self.dates = Some(match self.dates {
            Some((first, last)) => (first.min(day), last.max(day)),
            None => (day, day),
        });
    }
}

/// How a row deviates from an on-time, well-formed review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    OutOfOrder,
    Late,
    Malformed(Malformation),
}

/// The kinds of malformed rows, used in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformation {
    StarNotInteger,
    ImpossibleDate,
    UnparsableDate,
    EmptyProductId,
    Truncated,
}

const MALFORMATIONS: [Malformation; 5] = [
    Malformation::StarNotInteger,
    Malformation::ImpossibleDate,
    Malformation::UnparsableDate,
    Malformation::EmptyProductId,
    Malformation::Truncated,
];

impl Malformation {
    /// Whether the row still carries a valid review_date (and so moves the newest date).
    fn keeps_date(self) -> bool {
        matches!(
            self,
            Malformation::StarNotInteger | Malformation::EmptyProductId
        )
    }
}

/// One reviewable product of the catalogue.
struct Product {
    id: String,
    parent: u32,
    title: String,
    category: &'static str,
}

/// Produces the rows one by one, keeping the newest date written so far.
struct Generator<'a> {
    shape: &'a Shape,
    rng: StdRng,
    catalogue: Vec<Product>,
    popularity: Zipf,
    review_id_salt: u64,
    newest: Option<i64>,
    summary: Summary,
}

impl<'a> Generator<'a> {
    fn new(shape: &'a Shape) -> Self {
        let mut rng = StdRng::seed_from_u64(shape.seed);
        let catalogue = catalogue(&mut rng, shape.products as usize);
        let popularity = Zipf::new(catalogue.len(), ZIPF_EXPONENT);
        let review_id_salt = rng.random();
        Self {
            shape,
            rng,
            catalogue,
            popularity,
            review_id_salt,
            newest: None,
            summary: Summary::default(),
        }
    }

    /// Appends row `index` (with its newline) to `line`.
    fn write_row(&mut self, index: u64, line: &mut String) {
        let base = self.base_date(index);
        let (kind, date) = self.choose_kind(index, base);
        let malformation = match kind {
            Kind::Malformed(malformation) => Some(malformation),
            _ => None,
        };
        self.write_review(index, date, malformation, line);
        if malformation == Some(Malformation::Truncated) {
            self.truncate(line);
        }
        line.push('\n');
        self.count(kind, date);
    }

    /// The date of an on-time row: ascending, spread evenly over the rows.
    fn base_date(&self, index: u64) -> i64 {
        let offset = u128::from(index) * u128::from(self.shape.days) / u128::from(self.shape.rows);
        // offset < days, which is a u32.
        self.shape.start_date + offset as i64
    }

    /// Decides what the row is and its date; falls back to a normal row when the file is too
    /// young for the disorder drawn.
    fn choose_kind(&mut self, index: u64, base: i64) -> (Kind, i64) {
        let shape = self.shape;
        let draw: f64 = self.rng.random();
        let late_share = shape.late / (1.0 - LATE_ZONE_START);
        if draw < shape.malformed {
            let rotation = (self.summary.malformed % MALFORMATIONS.len() as u64) as usize;
            return (Kind::Malformed(MALFORMATIONS[rotation]), base);
        }
        if draw < shape.malformed + shape.out_of_order {
            if let Some(newest) = self.newest.filter(|&newest| newest > shape.start_date) {
                return (Kind::OutOfOrder, newest - 1);
            }
        } else if draw < shape.malformed + shape.out_of_order + late_share
            && index as f64 >= LATE_ZONE_START * shape.rows as f64
        {
            if let Some(newest) = self.newest {
                let most = LATE_DAYS.1.min(newest - shape.start_date);
                if most >= LATE_DAYS.0 {
                    return (
                        Kind::Late,
                        newest - self.rng.random_range(LATE_DAYS.0..=most),
                    );
                }
            }
        }
        (Kind::Normal, base)
    }

    /// Counts the row and, if its date is valid, moves the newest date.
    fn count(&mut self, kind: Kind, date: i64) {
        let summary = &mut self.summary;
        summary.rows += 1;
        match kind {
            Kind::Normal => {}
            Kind::OutOfOrder => summary.out_of_order += 1,
            Kind::Late => summary.late += 1,
            Kind::Malformed(_) => summary.malformed += 1,
        }
        let dated = match kind {
            Kind::Malformed(malformation) => malformation.keeps_date(),
            _ => true,
        };
        if dated {
            summary.record_date(date);
            self.newest = Some(self.newest.map_or(date, |newest| newest.max(date)));
        }
    }

    /// Appends the 15 columns of a review (no newline), broken as `malformation` says.
    fn write_review(
        &mut self,
        index: u64,
        date: i64,
        malformation: Option<Malformation>,
        line: &mut String,
    ) {
        let rng = &mut self.rng;
        let product = &self.catalogue[self.popularity.sample(rng)];
        let star = star_rating(rng);
        let (helpful, total) = votes(rng);
        let customer: u32 = rng.random_range(10_000_000..100_000_000);
        let vine = if rng.random_bool(0.01) { 'Y' } else { 'N' };
        let verified = if rng.random_bool(0.85) { 'Y' } else { 'N' };
        let product_id = if malformation == Some(Malformation::EmptyProductId) {
            ""
        } else {
            &product.id
        };
        let review_id = base36_13(mix(index.wrapping_add(self.review_id_salt)));
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            "US\t{customer}\tR{review_id}\t{product_id}\t{parent}\t{title}\t{category}\t",
            parent = product.parent,
            title = product.title,
            category = product.category,
        );
        match malformation {
            Some(Malformation::StarNotInteger) => line.push_str(STAR_WORDS[usize::from(star) - 1]),
            _ => line.push(char::from(b'0' + star)),
        }
        let _ = write!(line, "\t{helpful}\t{total}\t{vine}\t{verified}\t");
        push_headline(rng, star, line);
        line.push('\t');
        push_body(rng, star, line);
        line.push('\t');
        match malformation {
            Some(Malformation::ImpossibleDate) => {
                let year = &tsv::format_date(date)[..4];
                let _ = write!(line, "{year}-02-30");
            }
            Some(Malformation::UnparsableDate) => line.push_str("not-a-date"),
            _ => line.push_str(&tsv::format_date(date)),
        }
    }

    /// Cuts the line to between 1 and 14 columns.
    fn truncate(&mut self, line: &mut String) {
        let keep = self.rng.random_range(1..tsv::COLUMNS.len());
        if let Some((at, _)) = line.match_indices('\t').nth(keep - 1) {
            line.truncate(at);
        }
    }
}

/// Popularity skew of products: a few best sellers, a long tail.
const ZIPF_EXPONENT: f64 = 1.1;

/// A Zipf sampler over ranks `0..n` (rank 0 the most likely), by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        for value in &mut cdf {
            *value /= total;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let draw: f64 = rng.random();
        self.cdf
            .partition_point(|&c| c <= draw)
            .min(self.cdf.len() - 1)
    }
}

/// A bijection of u64 (SplitMix64's finaliser): distinct rows get distinct review ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const ALPHANUMERIC: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Thirteen base-36 digits, enough for every u64.
fn base36_13(mut value: u64) -> String {
    let mut digits = [b'0'; 13];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHANUMERIC[(value % 36) as usize];
        value /= 36;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

fn random_alphanumerics(rng: &mut impl Rng, count: usize) -> String {
    (0..count)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..36)]))
        .collect()
}

/// Products with unique ASIN-like ids, each in a category with a fitting title.
fn catalogue(rng: &mut impl Rng, count: usize) -> Vec<Product> {
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut products = Vec::with_capacity(count);
    while products.len() < count {
        let id = format!("B00{}", random_alphanumerics(rng, 7));
        if !seen.insert(id.clone()) {
            continue;
        }
        let (category, nouns) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        let title = format!(
            "{} {}{}",
            pick(rng, TITLE_ADJECTIVES),
            pick(rng, nouns),
            pick(rng, TITLE_SUFFIXES)
        );
        products.push(Product {
            id,
            parent: rng.random_range(100_000_000..1_000_000_000),
            title,
            category,
        });
    }
    products
}

fn pick<'w>(rng: &mut impl Rng, words: &[&'w str]) -> &'w str {
    words[rng.random_range(0..words.len())]
}

/// Star ratings as on Amazon: mostly 4 and 5 (cumulative 8%, 13%, 22%, 42%, 100%).
fn star_rating(rng: &mut impl Rng) -> u8 {
    const CUMULATIVE: [f64; 4] = [0.08, 0.13, 0.22, 0.42];
    let draw: f64 = rng.random();
    1 + CUMULATIVE.iter().take_while(|&&c| c <= draw).count() as u8
}

/// (helpful, total) votes: mostly none, with a Pareto tail; helpful never exceeds total.
fn votes(rng: &mut impl Rng) -> (u32, u32) {
    if rng.random_bool(0.6) {
        return (0, 0);
    }
    let draw = 1.0 - rng.random::<f64>();
    let total = draw.powf(-1.0 / 1.2).min(5000.0) as u32;
    let helpful = (f64::from(total) * rng.random::<f64>().sqrt()) as u32;
    (helpful.min(total), total)
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Body length in characters: log-normal, median ~300, a few of several KB.
fn body_length(rng: &mut impl Rng) -> usize {
    let length = (300f64.ln() + 0.9 * standard_normal(rng)).exp();
    length.clamp(12.0, 8000.0) as usize
}

/// A headline that fits the rating; often Amazon's own "Five Stars" kind.
fn push_headline(rng: &mut impl Rng, star: u8, line: &mut String) {
    if rng.random_bool(0.3) {
        line.push_str(STAR_HEADLINES[usize::from(star) - 1]);
        return;
    }
    let headlines = match star {
        1 | 2 => NEGATIVE_HEADLINES,
        3 => NEUTRAL_HEADLINES,
        _ => POSITIVE_HEADLINES,
    };
    line.push_str(pick(rng, headlines));
}

/// Appends an opinion that mostly fits the rating (one review in ten says the opposite: the
/// kind of mismatch a sentiment model flags), then sentences of common words until the body
/// reaches its drawn length.
fn push_body(rng: &mut impl Rng, star: u8, line: &mut String) {
    let start = line.len();
    let target = body_length(rng);
    let fitting = match star {
        1 | 2 => NEGATIVE_OPINIONS,
        3 => NEUTRAL_OPINIONS,
        _ => POSITIVE_OPINIONS,
    };
    let opinions = if rng.random_bool(0.1) {
        match star {
            1 | 2 => POSITIVE_OPINIONS,
            _ => NEGATIVE_OPINIONS,
        }
    } else {
        fitting
    };
    line.push_str(pick(rng, opinions));
    while line.len() - start < target {
        if line.len() > start {
            line.push(' ');
        }
        let words = rng.random_range(4..16);
        for position in 0..words {
            let word = pick(rng, BODY_WORDS);
            if position == 0 {
                let mut chars = word.chars();
                line.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                line.push_str(chars.as_str());
            } else {
                line.push(' ');
                line.push_str(word);
            }
        }
        line.push(if rng.random_bool(0.1) { '!' } else { '.' });
    }
}

const POSITIVE_OPINIONS: &[&str] = &[
    "Absolutely love it, best purchase this year!",
    "Excellent quality and it works perfectly.",
    "Great value, I am very happy with it.",
    "Wonderful, exactly what I wanted.",
    "Fantastic product, highly recommend it to everyone.",
    "Really nice and sturdy, my family enjoys it a lot.",
    "Works great, arrived early and looks beautiful.",
    "Amazing, better than I expected.",
];

const NEGATIVE_OPINIONS: &[&str] = &[
    "Terrible, it broke after two days.",
    "Awful quality, a complete waste of money.",
    "Very disappointed, it stopped working and support was useless.",
    "Horrible product, do not buy it.",
    "Cheap junk that fell apart, I hate it.",
    "Worst purchase ever, it arrived damaged and smelled bad.",
    "Poorly made and frustrating to use.",
    "Not good at all, I regret buying this.",
];

const NEUTRAL_OPINIONS: &[&str] = &[
    "It is okay for the price.",
    "Average product, nothing special.",
    "It does the job, some parts could be better.",
    "Decent but not as described in places.",
    "Fine for occasional use.",
    "Mixed feelings about this one.",
];

const STAR_WORDS: [&str; 5] = ["one", "two", "three", "four", "five"];

const STAR_HEADLINES: [&str; 5] = [
    "One Star",
    "Two Stars",
    "Three Stars",
    "Four Stars",
    "Five Stars",
];

#[rustfmt::skip]
const CATEGORIES: &[(&str, &[&str])] = &[
    ("Books", &["Novel", "Cookbook", "Memoir", "Field Guide", "Handbook", "Atlas", "Anthology"]),
    ("Electronics", &["Headphones", "Charger", "Bluetooth Speaker", "HDMI Cable", "Webcam"]),
    ("Home", &["Throw Pillow", "Bath Towel Set", "Desk Lamp", "Wall Clock", "Storage Basket"]),
    ("Kitchen", &["Chef's Knife", "Cutting Board", "Coffee Grinder", "Skillet", "Tea Kettle"]),
    ("Toys", &["Building Blocks", "Puzzle", "Plush Bear", "Board Game", "Remote Control Car"]),
    ("Music", &["Greatest Hits", "Live Album", "Soundtrack", "Acoustic Sessions", "Box Set"]),
    ("Video Games", &["Controller", "Racing Game", "Adventure Game", "Gaming Headset"]),
    ("Sports", &["Yoga Mat", "Water Bottle", "Resistance Bands", "Running Belt", "Tennis Balls"]),
    ("Beauty", &["Face Cream", "Shampoo", "Hair Dryer", "Lip Balm", "Nail Kit"]),
];

#[rustfmt::skip]
const TITLE_ADJECTIVES: &[&str] = &[
    "Classic", "Essential", "Complete", "Portable", "Premium", "Compact", "Ultimate", "Everyday",
    "Professional", "Deluxe", "Original", "Modern", "Little", "Illustrated", "Heavy Duty",
];

#[rustfmt::skip]
const TITLE_SUFFIXES: &[&str] = &[
    "", "", "", " (Black)", ", 2-Pack", " - Deluxe Edition", " (Large)", " with Case",
];

#[rustfmt::skip]
const POSITIVE_HEADLINES: &[&str] = &[
    "Great product", "Love it", "Works as expected", "Highly recommend",
    "Excellent value", "Exactly what I needed", "Better than I expected", "Great gift",
];

#[rustfmt::skip]
const NEUTRAL_HEADLINES: &[&str] = &[
    "It's okay", "Average", "Does the job", "Mixed feelings", "Decent for the price",
];

#[rustfmt::skip]
const NEGATIVE_HEADLINES: &[&str] = &[
    "Disappointed", "Broke after a week", "Not as described",
    "Waste of money", "Poor quality", "Would not buy again",
];

/// Common review words, the frequent ones repeated to weigh them.
#[rustfmt::skip]
const BODY_WORDS: &[&str] = &[
    "the", "the", "the", "a", "a", "and", "and", "to", "it", "it", "is", "is", "i", "i", "this",
    "this", "of", "for", "was", "with", "my", "but", "that", "very", "great", "good", "not", "on",
    "as", "so", "product", "quality", "price", "would", "recommend", "one", "just", "like", "well",
    "really", "after", "use", "used", "time", "bought", "love", "works", "nice", "easy", "little",
    "months", "weeks", "daughter", "son", "husband", "wife", "gift", "again", "arrived",
    "quickly", "package", "box", "size", "fits", "perfectly", "expected", "better", "worse",
    "than", "money", "worth", "buy", "five", "stars", "read", "story", "characters", "sound",
    "battery", "still", "only", "first", "last", "every", "day", "back", "return", "returned",
    "seller", "shipping", "fast", "cheap", "sturdy", "comfortable", "looks", "feels", "color",
    "pictures", "described", "exactly", "definitely", "happy", "disappointed", "problem", "also",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rows: u64, seed: u64) -> Shape {
        Shape {
            rows,
            seed,
            products: 300,
            start_date: tsv::parse_date(b"2015-01-01").unwrap(),
            days: 730,
            out_of_order: 0.1,
            late: 0.03,
            malformed: 0.02,
        }
    }

    fn generated(shape: &Shape) -> (String, Summary) {
        let mut out = Vec::new();
        let summary = generate(shape, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let (first, _) = generated(&shape(2000, 7));
        let (again, _) = generated(&shape(2000, 7));
        let (other, _) = generated(&shape(2000, 8));
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn lines_have_the_header_and_fifteen_columns() {
        let (text, summary) = generated(&shape(3000, 1));
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(tsv::HEADER));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 3000);
        assert_eq!(summary.rows, 3000);
        let short = rows
            .iter()
            .filter(|row| row.split('\t').count() != 15)
            .count();
        assert!(rows.iter().all(|row| row.split('\t').count() <= 15));
        assert!(short > 0 && short as u64 <= summary.malformed);
        let mut ids = std::collections::HashSet::new();
        for row in rows.iter().filter(|row| row.split('\t').count() == 15) {
            let columns: Vec<&str> = row.split('\t').collect();
            assert_eq!(columns[0], "US");
            assert!(columns[1].len() == 8 && columns[1].bytes().all(|b| b.is_ascii_digit()));
            assert!(columns[2].len() == 14 && columns[2].starts_with('R'));
            assert!(ids.insert(columns[2]), "duplicate review id {}", columns[2]);
            assert!(
                columns[3].is_empty() || (columns[3].len() == 10 && columns[3].starts_with("B00"))
            );
            assert_eq!(columns[4].len(), 9);
            assert!(!columns[13].is_empty());
        }
    }

    #[test]
    fn helpful_votes_never_exceed_total_votes() {
        let (text, _) = generated(&shape(5000, 3));
        let mut with_votes = 0;
        for row in text.lines().skip(1) {
            let Some(columns) = tsv::split_columns(row.as_bytes()) else {
                continue;
            };
            let number = |i: usize| {
                std::str::from_utf8(columns[i])
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            };
            assert!(number(8) <= number(9), "{row}");
            with_votes += usize::from(number(9) > 0);
        }
        assert!(with_votes > 0);
    }

    /// Classifies every dated row by how far it is behind the newest date written before it.
    #[test]
    fn disorder_is_bounded_and_counted() {
        let rows = 20_000;
        let (text, summary) = generated(&shape(rows, 11));
        let (mut newest, mut out_of_order, mut late) = (None::<i64>, 0, 0);
        for (index, row) in text.lines().skip(1).enumerate() {
            let Some(columns) = tsv::split_columns(row.as_bytes()) else {
                continue;
            };
            let Some(date) = tsv::parse_date(columns[tsv::REVIEW_DATE]) else {
                continue;
            };
            let behind = newest.map_or(0, |newest| newest - date);
            match behind {
                ..=0 => {}
                1 => out_of_order += 1,
                100.. => {
                    assert!(
                        index as f64 >= LATE_ZONE_START * rows as f64,
                        "late row {index}"
                    );
                    assert!(behind <= LATE_DAYS.1);
                    late += 1;
                }
                _ => panic!("row {index} is {behind} days behind: neither on time nor late"),
            }
            newest = Some(newest.map_or(date, |newest: i64| newest.max(date)));
        }
        assert_eq!((out_of_order, late), (summary.out_of_order, summary.late));
        assert!(
            summary.out_of_order > 1000 && summary.late > 200,
            "{summary:?}"
        );
        let (first, last) = summary.dates.unwrap();
        assert_eq!(tsv::format_date(first), "2015-01-01");
        assert_eq!(tsv::format_date(last), "2016-12-30");
    }

    #[test]
    fn malformed_rows_are_each_kind_and_counted() {
        let (text, summary) = generated(&shape(5000, 5));
        let mut seen = [0u64; 5];
        for row in text.lines().skip(1) {
            let Some(columns) = tsv::split_columns(row.as_bytes()) else {
                seen[4] += 1;
                continue;
            };
            let kind = if std::str::from_utf8(columns[7])
                .unwrap()
                .parse::<u8>()
                .is_err()
            {
                0
            } else if columns[14] == b"not-a-date" {
                2
            } else if tsv::parse_date(columns[14]).is_none() {
                1
            } else if columns[3].is_empty() {
                3
            } else {
                continue;
            };
            seen[kind] += 1;
        }
        assert_eq!(seen.iter().sum::<u64>(), summary.malformed);
        assert!(seen.iter().all(|&count| count > 0), "{seen:?}");
    }

    #[test]
    fn zipf_favours_low_ranks() {
        let zipf = Zipf::new(100, ZIPF_EXPONENT);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > 5 * counts[9] && counts[9] > counts[99]);
        assert_eq!(Zipf::new(1, ZIPF_EXPONENT).sample(&mut rng), 0);
    }

    #[test]
    fn too_much_disorder_is_refused() {
        let mut too_much = shape(10, 1);
        too_much.out_of_order = 0.9;
        too_much.late = 0.3;
        assert!(generate(&too_much, &mut Vec::new()).is_err());
    }
}
