"""Word lists the generator draws text from: names, titles, review phrases, search queries.

Domains the pipeline validates (countries, plans, genres, devices, …) live in ``raw_schema.py``; these
lists only shape free text, so they may change without touching any contract. None of them contains a
comma, a quote or a newline except REVIEW_TEXTS, whose commas the CSV formatting quotes.
"""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Margaret",
    "Donald", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Paul", "Donna", "Joshua", "Michelle",
    "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie",
    "Ronald", "Rebecca", "Jason", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Amy",
    "Jacob", "Kathleen", "Gary", "Angela", "Nicholas", "Shirley", "Eric", "Brenda", "Jonathan", "Emma",
    "Stephen", "Anna", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Samantha", "Brandon", "Katherine",
    "Benjamin", "Christine", "Samuel", "Helen", "Gregory", "Debra", "Alexander", "Rachel", "Patrick",
    "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather", "Jerry",
    "Noah", "Liam", "Sophia", "Mia", "Lucas", "Chloe", "Ethan", "Zoe", "Mateo", "Aisha", "Wei", "Priya",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
    "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez",
    "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart",
    "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Tremblay", "Gagnon", "Roy", "Cote", "Bouchard",
    "Gauthier", "Morin", "Lavoie", "Fortin", "Singh", "Chen", "Wong", "MacDonald", "Leblanc", "Fraser",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example.com")
CITY_PREFIXES: tuple[str, ...] = ("", "", "", "North ", "South ", "East ", "West ", "New ", "Port ", "Lake ")
CITY_SUFFIXES: tuple[str, ...] = (
    "ville", "ton", "haven", "burg", "field", "port", "side", "wood", "view", "land", "bury", "stad",
    " Falls",
)  # fmt: skip

TITLE_FIRST: tuple[str, ...] = (
    "Dark", "Silent", "Broken", "Golden", "Hidden", "Last", "Lost", "Midnight", "Crimson", "Frozen", "Wild",
    "Eternal", "Secret", "Burning", "Electric", "Final", "Distant", "Shadow", "Iron", "Velvet", "Hollow",
    "Northern", "Savage", "Little", "Endless", "Fallen", "Brave", "Quiet", "Restless", "Neon", "Our", "My",
)  # fmt: skip
TITLE_SECOND: tuple[str, ...] = (
    "Empire", "Horizon", "Kingdom", "River", "Signal", "Garden", "Legacy", "Protocol", "Frontier", "Harbor",
    "Mission", "Promise", "Witness", "Echo", "Orbit", "Crown", "Storm", "Voyage", "Family", "Code", "Heart",
    "City", "Road", "Island", "Summer", "Winter", "Games", "Detective", "Warrior", "Legend", "Dream", "Case",
)  # fmt: skip

CONTENT_RATINGS: tuple[str, ...] = (
    "G", "PG", "PG-13", "R", "NC-17", "TV-Y", "TV-Y7", "TV-G", "TV-PG", "TV-14", "TV-MA",
)  # fmt: skip
MATURE_RATINGS: frozenset[str] = frozenset({"R", "NC-17", "TV-MA"})
# Production countries and the language most of their titles are in.
ORIGIN_COUNTRIES: tuple[str, ...] = (
    "USA",
    "South Korea",
    "Canada",
    "UK",
    "Japan",
    "Germany",
    "France",
    "India",
)
ORIGIN_SHARE: tuple[float, ...] = (0.52, 0.11, 0.10, 0.085, 0.055, 0.045, 0.045, 0.04)
LANGUAGES: tuple[str, ...] = (
    "English",
    "Korean",
    "English",
    "English",
    "Japanese",
    "German",
    "French",
    "Hindi",
)
OTHER_LANGUAGES: tuple[str, ...] = ("English", "Spanish", "French", "Italian", "Korean", "Hindi", "German")

# Review phrases by sentiment (negative, neutral, positive): written for this generator.
REVIEW_TEXTS: tuple[tuple[str, ...], ...] = (
    (
        "Could not get through the first hour.",
        "Flat characters and a plot that goes nowhere.",
        "Too long, too slow, too predictable.",
        "The trailer was better than the show.",
        "I wanted to like it, but the writing lets it down.",
        "Weak ending ruined the whole thing.",
        "Not worth the hype at all.",
    ),
    (
        "Fine for a rainy evening.",
        "Some strong scenes, some filler.",
        "Good cast, average script.",
        "It was alright. I probably will not rewatch it.",
        "Starts slow, gets better, ends okay.",
        "Decent, if a little forgettable.",
    ),
    (
        "Loved every minute of it.",
        "Gripping from start to finish.",
        "Beautifully shot, brilliantly acted.",
        "Binged the whole season in a weekend!",
        "Smart, funny and surprisingly moving.",
        "One of the best things on the platform.",
        "Great characters, great soundtrack, great story.",
        "Instantly added to my favourites.",
    ),
)
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
REVIEW_DEVICES: tuple[str, ...] = ("Smart TV", "Tablet", "Mobile", "Laptop")  # reviews and searches

SEARCH_QUERIES: tuple[str, ...] = (
    "action movies", "romantic comedies", "true crime", "korean drama", "anime", "stand up comedy",
    "nature documentaries", "space documentaries", "sci-fi series", "thriller movies", "horror movies",
    "family movies", "kids shows", "cooking shows", "sports documentaries", "period dramas", "westerns",
    "war movies", "music documentaries", "mystery series", "fantasy series", "new releases", "trending now",
    "netflix originals", "limited series", "award winners", "feel good movies", "heist movies",
    "based on a true story", "short episodes", "holiday movies", "classic films",
)  # fmt: skip

RECOMMENDATION_TYPES: tuple[str, ...] = (
    "personalized", "trending", "similar_content", "because_you_watched", "new_release",
)  # fmt: skip
RECOMMENDATION_TYPE_SHARE: tuple[float, ...] = (0.35, 0.2, 0.2, 0.15, 0.1)
# Mean relevance score of each recommendation type (personalized ones score higher).
RECOMMENDATION_TYPE_SCORE: tuple[float, ...] = (0.68, 0.52, 0.6, 0.64, 0.48)
TIMES_OF_DAY: tuple[str, ...] = ("morning", "afternoon", "evening", "night")
TIME_OF_DAY_SHARE: tuple[float, ...] = (0.15, 0.25, 0.42, 0.18)
ALGORITHM_VERSIONS: tuple[str, ...] = ("v1.0", "v1.1", "v2.0", "v2.1", "v3.0")
