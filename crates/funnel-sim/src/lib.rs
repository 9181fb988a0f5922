//! A seeded world of items and users for demos, tests and (later) closed-loop policy
//! simulation. Items have a genre, a latent vector and a quality; users have latent
//! tastes. When a user is shown a slate, position `p` is examined with probability
//! `1 / p^η` and an examined item is clicked with probability
//! `σ(affinity·u·v + quality + bias)`; clicks lead to watches (seconds) and sometimes
//! purchases.
//!
//! The history generator plays a uniformly random logging policy, so the propensity of
//! every impression is known exactly: an item lands in a given slot with probability
//! 1 / (catalog size). [`closed_loop`] instead lets Funnel's own policies choose the
//! slates, round after round, retraining in between.

pub mod closed_loop;
mod words;

use funnel_core::{Event, EventContext, EventKind, Item, Timestamp, User};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};

pub use words::GENRES;

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub items: usize,
    pub users: usize,
    /// Latent dimensions of tastes and items.
    pub dims: usize,
    pub sessions_per_user: usize,
    pub slate_size: usize,
    /// Position bias: examination probability of position p is 1 / p^eta.
    pub position_decay: f64,
    /// Start of the simulated history (seconds since 1970).
    pub start: Timestamp,
    /// Length of the simulated history in days.
    pub days: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            items: 1000,
            users: 500,
            dims: 8,
            sessions_per_user: 20,
            slate_size: 10,
            position_decay: 1.0,
            start: 1_700_000_000,
            days: 60,
        }
    }
}

/// A simulated item's hidden truth.
#[derive(Debug, Clone)]
pub struct SimItem {
    pub item: Item,
    pub genre: usize,
    pub latent: Vec<f64>,
    /// Log-odds offset: how appealing the item is to everyone.
    pub quality: f64,
    pub price: f64,
}

#[derive(Debug, Clone)]
pub struct SimUser {
    pub user: User,
    pub taste: Vec<f64>,
    pub favourite_genres: Vec<usize>,
}

/// What a user did with one slot of a slate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reaction {
    pub position: u32,
    pub examined: bool,
    pub clicked: bool,
    pub watch_seconds: f64,
    pub purchased: bool,
}

#[derive(Debug, Clone)]
pub struct World {
    pub config: SimConfig,
    pub items: Vec<SimItem>,
    pub users: Vec<SimUser>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl World {
    pub fn new(config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let normal = Normal::new(0.0, 1.0).expect("valid normal");
        let centroids: Vec<Vec<f64>> =
            (0..GENRES.len()).map(|_| (0..config.dims).map(|_| normal.sample(&mut rng)).collect()).collect();
        let items = (0..config.items).map(|i| sim_item(i, &config, &centroids, &mut rng)).collect();
        let users = (0..config.users).map(|u| sim_user(u, &config, &centroids, &mut rng)).collect();
        Self { config, items, users }
    }

    /// Probability that the user clicks the item once examined.
    pub fn click_probability(&self, user: usize, item: usize) -> f64 {
        let affinity = dot(&self.users[user].taste, &self.items[item].latent) / (self.config.dims as f64).sqrt();
        sigmoid(1.5 * affinity + self.items[item].quality - 2.0)
    }

    /// How the user reacts to a slate (item indices, top first).
    pub fn react(&self, user: usize, slate: &[usize], rng: &mut impl Rng) -> Vec<Reaction> {
        slate
            .iter()
            .enumerate()
            .map(|(slot, &item)| {
                let position = slot as u32 + 1;
                let examined = rng.random::<f64>() < f64::from(position).powf(-self.config.position_decay);
                let p_click = self.click_probability(user, item);
                let clicked = examined && rng.random::<f64>() < p_click;
                let watch_seconds = if clicked { (30.0 + 1800.0 * p_click * rng.random::<f64>()).round() } else { 0.0 };
                let purchased = clicked && rng.random::<f64>() < 0.1 * p_click;
                Reaction { position, examined, clicked, watch_seconds, purchased }
            })
            .collect()
    }

    /// A history of sessions under a uniformly random logging policy: every impression,
    /// and the click, watch and purchase events that followed, in time order.
    pub fn history(&self) -> Vec<Event> {
        let config = &self.config;
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed);
        let span = i64::from(config.days) * 86_400;
        let propensity = 1.0 / self.items.len() as f64;
        let all: Vec<usize> = (0..self.items.len()).collect();
        let mut events = Vec::new();
        for user in 0..self.users.len() {
            for session in 0..config.sessions_per_user {
                let at = config.start + rng.random_range(0..span);
                let slate: Vec<usize> = all.choose_multiple(&mut rng, config.slate_size).copied().collect();
                let reactions = self.react(user, &slate, &mut rng);
                let shown = Shown { user, at, request_id: format!("r{user}-{session}"), surface: "home" };
                let propensities = vec![propensity; slate.len()];
                events.extend(self.events(&shown, &slate, &propensities, &reactions));
            }
        }
        events.sort_by_key(|e| e.timestamp);
        events
    }

    /// The events a slate and the user's reactions to it leave in the log: an impression
    /// per slot (with its position and propensity), and the click, watch and purchase
    /// that followed.
    pub fn events(
        &self,
        shown: &Shown<'_>,
        slate: &[usize],
        propensities: &[f64],
        reactions: &[Reaction],
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for ((reaction, &item), &propensity) in reactions.iter().zip(slate).zip(propensities) {
            let event = |kind, value, offset| Event {
                user: self.users[shown.user].user.id.clone(),
                item: self.items[item].item.id.clone(),
                kind,
                value,
                timestamp: shown.at + offset,
                context: EventContext {
                    request_id: Some(shown.request_id.clone()),
                    surface: Some(shown.surface.into()),
                    position: Some(reaction.position),
                    propensity: Some(propensity),
                    arm: None,
                },
            };
            events.push(event(EventKind::Impression, None, 0));
            if reaction.clicked {
                events.push(event(EventKind::Click, None, 1));
                events.push(event(EventKind::Watch, Some(reaction.watch_seconds), 2));
            }
            if reaction.purchased {
                events.push(event(EventKind::Purchase, Some(self.items[item].price), 3));
            }
        }
        events
    }

    /// Tastes change: every item's quality takes a random step of standard deviation
    /// `sd` (log-odds), so yesterday's hits fade and overlooked items rise.
    pub fn drift(&mut self, sd: f64, rng: &mut impl Rng) {
        if sd > 0.0 {
            let step = Normal::new(0.0, sd).expect("valid normal");
            self.items.iter_mut().for_each(|item| item.quality += step.sample(rng));
        }
    }
}

/// Who was shown a slate, when, and by which request and surface.
#[derive(Debug, Clone)]
pub struct Shown<'a> {
    pub user: usize,
    pub at: Timestamp,
    pub request_id: String,
    pub surface: &'a str,
}

fn sim_item(i: usize, config: &SimConfig, centroids: &[Vec<f64>], rng: &mut StdRng) -> SimItem {
    let genre = rng.random_range(0..GENRES.len());
    let noise = Normal::new(0.0, 0.6).expect("valid normal");
    let latent = centroids[genre].iter().map(|c| c + noise.sample(rng)).collect();
    let quality = Normal::new(0.0, 0.8).expect("valid normal").sample(rng);
    let price: f64 = LogNormal::new(2.0, 0.5).expect("valid lognormal").sample(rng);
    let price = (price * 100.0).round() / 100.0;
    let (title, description, tags) = words::describe(genre, rng);
    let mut item = Item::bare(format!("item-{i:05}"));
    item.title = title;
    item.fields.insert("description".into(), description);
    item.categories = vec![GENRES[genre].name.to_owned()];
    item.tags = tags;
    item.attributes.insert("price".into(), price);
    item.created_at = Some(config.start - rng.random_range(0..365 * 86_400));
    SimItem { item, genre, latent, quality, price }
}

fn sim_user(u: usize, config: &SimConfig, centroids: &[Vec<f64>], rng: &mut StdRng) -> SimUser {
    let first = rng.random_range(0..GENRES.len());
    let second = rng.random_range(0..GENRES.len());
    let noise = Normal::new(0.0, 0.5).expect("valid normal");
    let taste =
        (0..config.dims).map(|d| 0.7 * centroids[first][d] + 0.3 * centroids[second][d] + noise.sample(rng)).collect();
    let mut user = User { id: format!("user-{u:04}"), attributes: Default::default() };
    let age_band = ["18-24", "25-34", "35-44", "45-54", "55+"].choose(rng).expect("non-empty");
    user.attributes.insert("age_band".into(), serde_json::json!(age_band));
    user.attributes.insert("favourite_genre".into(), serde_json::json!(GENRES[first].name));
    SimUser { user, taste, favourite_genres: vec![first, second] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig { items: 100, users: 50, sessions_per_user: 10, ..SimConfig::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_world_and_history() {
        let a = World::new(small());
        let b = World::new(small());
        assert_eq!(a.items[7].item, b.items[7].item);
        assert_eq!(a.history(), b.history());
        let c = World::new(SimConfig { seed: 7, ..small() });
        assert_ne!(a.items[7].item, c.items[7].item);
    }

    #[test]
    fn history_is_valid_time_ordered_and_position_biased() {
        let world = World::new(small());
        let history = world.history();
        assert!(history.iter().all(|e| e.validate().is_ok()));
        assert!(history.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let impressions = history.iter().filter(|e| e.kind == EventKind::Impression).count();
        assert_eq!(impressions, 50 * 10 * 10);
        let clicks_at =
            |p: u32| history.iter().filter(|e| e.kind == EventKind::Click && e.context.position == Some(p)).count();
        assert!(
            clicks_at(1) > 2 * clicks_at(5),
            "top slots must draw more clicks: {} vs {}",
            clicks_at(1),
            clicks_at(5)
        );
    }

    #[test]
    fn users_prefer_items_of_their_favourite_genre() {
        let world = World::new(small());
        let (mut liked, mut other, mut n_liked, mut n_other) = (0.0, 0.0, 0, 0);
        for (u, user) in world.users.iter().enumerate() {
            for (i, item) in world.items.iter().enumerate() {
                if item.genre == user.favourite_genres[0] {
                    liked += world.click_probability(u, i);
                    n_liked += 1;
                } else {
                    other += world.click_probability(u, i);
                    n_other += 1;
                }
            }
        }
        assert!(liked / f64::from(n_liked) > 1.5 * other / f64::from(n_other));
    }
}
