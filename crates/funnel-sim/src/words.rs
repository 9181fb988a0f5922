//! Vocabulary of the simulated catalog: each genre has its own words, so that titles and
//! descriptions carry real signal for text search and content similarity.

use rand::Rng;
use rand::seq::IndexedRandom;

#[derive(Debug)]
pub struct Genre {
    pub name: &'static str,
    adjectives: &'static [&'static str],
    nouns: &'static [&'static str],
    themes: &'static [&'static str],
}

pub const GENRES: &[Genre] = &[
    Genre {
        name: "Science Fiction",
        adjectives: &["Quantum", "Distant", "Silent", "Neon", "Infinite", "Synthetic", "Orbital", "Hollow"],
        nouns: &["Galaxy", "Android", "Nebula", "Starship", "Signal", "Colony", "Horizon", "Machine"],
        themes: &[
            "first contact with an alien signal",
            "a mutiny aboard a starship",
            "robots that dream",
            "time travel gone wrong",
        ],
    },
    Genre {
        name: "Comedy",
        adjectives: &["Awkward", "Lucky", "Crazy", "Clumsy", "Cheeky", "Ridiculous", "Happy", "Noisy"],
        nouns: &["Wedding", "Roommates", "Vacation", "Neighbours", "Party", "Office", "Road Trip", "Family"],
        themes: &[
            "a wedding that goes hilariously wrong",
            "two roommates and a goat",
            "an office prank war",
            "a family road trip",
        ],
    },
    Genre {
        name: "Drama",
        adjectives: &["Broken", "Quiet", "Last", "Bitter", "Tender", "Forgotten", "Honest", "Fragile"],
        nouns: &["Promise", "Letters", "Harvest", "Winter", "Daughter", "Courtroom", "River", "Farewell"],
        themes: &[
            "a family torn by an inheritance",
            "a lawyer's last case",
            "grief and forgiveness",
            "growing up in a small town",
        ],
    },
    Genre {
        name: "Documentary",
        adjectives: &["Wild", "Hidden", "Frozen", "Deep", "Ancient", "Urban", "Secret", "Living"],
        nouns: &["Oceans", "Planet", "Empires", "Forests", "Volcanoes", "Cities", "Bees", "Glaciers"],
        themes: &[
            "wildlife of the deep ocean",
            "the rise and fall of ancient empires",
            "climate and melting glaciers",
            "the secret life of bees",
        ],
    },
    Genre {
        name: "Horror",
        adjectives: &["Haunted", "Cursed", "Bloody", "Dark", "Whispering", "Rotten", "Pale", "Hungry"],
        nouns: &["Manor", "Doll", "Cellar", "Woods", "Asylum", "Ritual", "Shadows", "Lake"],
        themes: &[
            "a haunted manor and its ghosts",
            "a cursed doll",
            "a ritual in the dark woods",
            "something hungry in the cellar",
        ],
    },
    Genre {
        name: "Romance",
        adjectives: &["Sweet", "Secret", "Summer", "Paris", "Second", "Starlit", "Endless", "Golden"],
        nouns: &["Kiss", "Love", "Affair", "Letters", "Dance", "Heart", "Promise", "Serenade"],
        themes: &[
            "love found on a summer holiday",
            "a secret affair in Paris",
            "a second chance at love",
            "letters between two strangers",
        ],
    },
    Genre {
        name: "Action",
        adjectives: &["Deadly", "Rogue", "Iron", "Rapid", "Fearless", "Final", "Burning", "Steel"],
        nouns: &["Mission", "Heist", "Agent", "Pursuit", "Strike", "Protocol", "Fortress", "Convoy"],
        themes: &[
            "a rogue agent on a final mission",
            "a bank heist with car chases",
            "a siege of a mountain fortress",
            "explosions and a race against time",
        ],
    },
    Genre {
        name: "Animation",
        adjectives: &["Little", "Magic", "Brave", "Tiny", "Curious", "Flying", "Sleepy", "Jolly"],
        nouns: &["Dragon", "Fox", "Robot", "Penguin", "Kingdom", "Balloon", "Friends", "Forest"],
        themes: &[
            "a brave little fox and her friends",
            "a dragon who cannot fly",
            "a magic kingdom of toys",
            "a penguin's journey home",
        ],
    },
    Genre {
        name: "Thriller",
        adjectives: &["Silent", "Twisted", "Fatal", "Cold", "Hidden", "Perfect", "Missing", "Double"],
        nouns: &["Witness", "Alibi", "Conspiracy", "Stranger", "Motive", "Suspect", "Evidence", "Game"],
        themes: &[
            "a detective and a perfect alibi",
            "a conspiracy inside the government",
            "a missing witness",
            "a stranger on a night train",
        ],
    },
    Genre {
        name: "Music",
        adjectives: &["Electric", "Blue", "Midnight", "Wild", "Soulful", "Loud", "Acoustic", "Velvet"],
        nouns: &["Jazz", "Guitar", "Symphony", "Band", "Rhythm", "Blues", "Concert", "Chorus"],
        themes: &["a jazz band on tour", "a guitar prodigy's rise", "the making of a symphony", "a reunion concert"],
    },
];

const SUFFIXES: &[&str] = &["", "", "", " II", " III", " Returns", " Rising", " Reloaded"];

/// A title, a description and tags for an item of `genre`.
pub(crate) fn describe(genre: usize, rng: &mut impl Rng) -> (String, String, Vec<String>) {
    let g = &GENRES[genre];
    let pick = |words: &'static [&'static str], rng: &mut _| *words.choose(rng).expect("non-empty");
    let title = format!("{} {}{}", pick(g.adjectives, rng), pick(g.nouns, rng), pick(SUFFIXES, rng));
    let theme = pick(g.themes, rng);
    let description =
        format!("A {} {} story about {theme}.", pick(g.adjectives, rng).to_lowercase(), g.name.to_lowercase());
    let mut tags = vec![pick(g.nouns, rng).to_lowercase()];
    if rng.random_bool(0.3) {
        tags.push(
            ["award-winning", "classic", "new-release", "family-friendly", "cult"][rng.random_range(0..5)].to_owned(),
        );
    }
    (title, description, tags)
}
