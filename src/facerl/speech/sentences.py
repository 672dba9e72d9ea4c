"""Deterministic generator of phonetically varied English sentences.

The sentences are prompts for text-to-speech: each is 6-13 words long, which
is roughly 2-5 s of speech at 160-175 words per minute (eSpeak NG en-us, which
talks a little faster than its nominal rate, takes about 1.7-4.6 s with a
median near 2.8 s).  A small hand-written
vocabulary (names, people, objects, foods, animals, places, adjectives,
adverbs, verbs, numbers and time phrases) is combined by a dozen templates:
statements, questions, exclamations and requests, with adjectives, adverbs,
prepositional phrases, counts and names.

The vocabulary covers every English phone and leans on the sounds that matter
most for lip animation: bilabials (p, b, m) next to many different vowels,
labiodentals (f, v), rounded vowels (boot, book, boat, boy) and open vowels
(map, mop, mouse, pie).  Every sentence contains at least two bilabial
letters (p, b or m); words with silent bilabials (lamb, comb, receipt) are
avoided so that the spelling check stays honest.

Example::

    >>> make_sentences(2, seed=0)  # doctest: +NORMALIZE_WHITESPACE
    ['How many bees did your librarian follow the other day?',
     'Please brush their rough wolf beyond the playground!']
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["MAX_WORDS", "MIN_WORDS", "count_bilabial_letters", "make_sentences", "plural"]

MIN_WORDS = 6
MAX_WORDS = 13
MIN_BILABIAL_LETTERS = 2

# --------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------

NAMES = (
    "Pam", "Bob", "Ben", "Mabel", "Maya", "Emma", "Paul", "Molly", "Bruno", "Pablo",
    "Toby", "Abby", "Max", "Mia", "Owen", "Ruth", "Zoe", "George", "Joy", "Vera",
    "Felix", "Hugo", "Nina", "Judy", "Theo", "Amber", "Robin", "Barbara", "Omar", "Kim",
    "Sam", "Tom", "Liam", "Eva", "Victor", "Beth", "Pete", "Polly", "Jasmine", "Chuck",
)

PEOPLE = (
    "baker", "barber", "plumber", "farmer", "butcher", "pilot", "mayor", "teacher",
    "doctor", "neighbor", "brother", "mother", "father", "cousin", "grandmother",
    "boss", "coach", "dentist", "captain", "painter", "student", "sailor", "poet",
    "musician", "mechanic", "librarian", "professor", "postman", "waiter", "gardener",
    "engineer", "umpire", "puppeteer", "zookeeper",
)

# Objects, foods and animals all have regular plurals unless listed in _IRREGULAR_PLURALS.
OBJECTS = (
    "map", "mop", "lamp", "box", "basket", "bucket", "bottle", "button", "blanket",
    "pillow", "umbrella", "envelope", "pebble", "puppet", "balloon", "broom", "brush",
    "mirror", "hammer", "ribbon", "trumpet", "drum", "banjo", "oboe", "kettle", "teapot",
    "pan", "plate", "spoon", "cup", "mug", "jar", "bowl", "napkin", "backpack", "wallet",
    "purse", "camera", "computer", "book", "notebook", "magazine", "pencil", "paintbrush",
    "rope", "wagon", "bicycle", "boat", "canoe", "kite", "ball", "marble", "medal",
    "puzzle", "jacket", "boot", "mitten", "sweater", "vase", "statue", "robot", "clock",
    "key", "ring", "coin", "toy", "towel", "bench", "couch", "chair", "flag", "globe",
    "harmonica", "microphone", "poster", "postcard", "suitcase", "thermos", "tuba",
    "violin", "whistle", "helmet", "shovel", "knife", "wheelbarrow", "vacuum",
)

FOODS = (
    "soup", "pie", "peach", "plum", "apple", "banana", "mango", "muffin", "pancake",
    "potato", "tomato", "cabbage", "carrot", "biscuit", "bagel", "sandwich", "pizza",
    "burger", "cookie", "pudding", "lemon", "melon", "cherry", "berry", "omelet",
    "bun", "pepper", "pear", "papaya", "pumpkin", "cupcake", "dumpling", "meatball",
    "noodle", "pretzel", "waffle", "yogurt", "avocado", "eggplant", "mushroom",
)

ANIMALS = (
    "puppy", "bird", "bee", "bat", "beaver", "moose", "mouse", "pony", "pig", "pigeon",
    "monkey", "bear", "buffalo", "owl", "otter", "penguin", "parrot", "panda", "beetle",
    "bunny", "sheep", "goose", "wolf", "zebra", "giraffe", "hippo", "camel", "goat",
    "turtle", "whale", "frog", "fox", "yak", "oyster", "poodle", "python",
)

_IRREGULAR_PLURALS = {
    "mouse": "mice", "goose": "geese", "sheep": "sheep", "moose": "moose",
    "wolf": "wolves", "knife": "knives", "potato": "potatoes", "tomato": "tomatoes",
    "avocado": "avocados", "mango": "mangoes", "hippo": "hippos", "banjo": "banjos",
    "buffalo": "buffaloes",
}

# Places, grouped by the prepositions that read naturally with them.
_PLACES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("in", "inside", "behind", "near", "outside", "beside"),
        ("museum", "bakery", "library", "cabin", "basement", "bedroom", "kitchen",
         "palace", "garage", "church", "gym", "warehouse", "post office", "barbershop",
         "hospital", "theater", "lighthouse", "cottage", "supermarket"),
    ),
    (
        ("on", "by", "near", "beneath", "beside"),
        ("bridge", "porch", "pier", "balcony", "boardwalk", "rooftop", "bus", "platform",
         "stairs", "ferry"),
    ),
    (
        ("at", "by", "near", "behind", "beyond"),
        ("pool", "pond", "beach", "barn", "playground", "park", "harbor", "campfire",
         "bus stop", "zoo", "orchard", "meadow", "village", "mountain", "fountain",
         "farm", "airport", "market", "waterfall", "vineyard"),
    ),
)

ADJECTIVES = (
    "big", "bumpy", "purple", "pink", "brown", "blue", "bright", "warm", "plump",
    "smooth", "tiny", "heavy", "rough", "soft", "shiny", "yellow", "orange", "broken",
    "empty", "famous", "modern", "noisy", "quiet", "beige", "oily", "huge", "cheap",
    "cozy", "dusty", "fluffy", "fuzzy", "golden", "woolen", "wooden", "muddy", "damp",
    "bulky", "sweet", "sour", "spicy", "crisp", "lumpy", "polished", "battered", "pale",
    "gloomy", "pretty", "cheerful", "gentle", "massive", "precious", "vivid", "velvet",
    "vintage", "frozen", "fresh", "ancient", "enormous", "elegant", "ugly", "old",
    "young", "cool", "thick", "thin", "sticky", "rubber", "plastic", "bouncy", "humble",
    "zippy", "jolly", "marvelous", "pompous", "superb", "awful", "round", "smelly",
)

ADVERBS = (
    "quietly", "happily", "promptly", "boldly", "slowly", "smoothly", "calmly",
    "politely", "proudly", "briefly", "gently", "firmly", "bravely", "patiently",
    "playfully", "carefully", "eagerly", "cheerfully", "awkwardly", "warmly",
    "rapidly", "abruptly", "humbly", "openly", "secretly", "thoughtfully", "joyfully",
    "lazily", "nervously", "quickly", "wisely", "vaguely", "loudly", "boyishly",
)

FREQUENCY_ADVERBS = ("always", "usually", "sometimes", "never", "often", "rarely", "seldom")

DEGREE_WORDS = (
    "very", "rather", "quite", "remarkably", "pretty", "almost", "perfectly",
    "surprisingly", "extremely", "unusually", "somewhat", "a bit", "terribly",
)

# (base form, past tense)
GENERAL_VERBS = (
    ("buy", "bought"), ("bring", "brought"), ("grab", "grabbed"), ("drop", "dropped"),
    ("move", "moved"), ("pack", "packed"), ("pick", "picked"), ("polish", "polished"),
    ("paint", "painted"), ("open", "opened"), ("fix", "fixed"), ("borrow", "borrowed"),
    ("carry", "carried"), ("wrap", "wrapped"), ("bury", "buried"), ("hide", "hid"),
    ("find", "found"), ("keep", "kept"), ("sell", "sold"), ("lose", "lost"),
    ("throw", "threw"), ("swap", "swapped"), ("weigh", "weighed"), ("measure", "measured"),
    ("wash", "washed"), ("ship", "shipped"), ("push", "pushed"), ("pull", "pulled"),
    ("check", "checked"), ("choose", "chose"), ("show", "showed"), ("hold", "held"),
    ("bump", "bumped"), ("stamp", "stamped"), ("examine", "examined"),
    ("return", "returned"), ("admire", "admired"), ("describe", "described"),
    ("take", "took"), ("leave", "left"), ("notice", "noticed"), ("spot", "spotted"),
    ("fetch", "fetched"), ("deliver", "delivered"), ("inspect", "inspected"),
    ("treasure", "treasured"), ("miss", "missed"), ("draw", "drew"), ("sketch", "sketched"),
    ("guard", "guarded"), ("mention", "mentioned"), ("approve", "approved"),
)

FOOD_VERBS = (
    ("buy", "bought"), ("bring", "brought"), ("grab", "grabbed"), ("pick", "picked"),
    ("bake", "baked"), ("peel", "peeled"), ("chop", "chopped"), ("sample", "sampled"),
    ("boil", "boiled"), ("eat", "ate"), ("taste", "tasted"), ("serve", "served"),
    ("share", "shared"), ("cook", "cooked"), ("mash", "mashed"), ("squeeze", "squeezed"),
    ("slice", "sliced"), ("warm up", "warmed up"), ("pour", "poured"), ("munch", "munched"),
)

ANIMAL_VERBS = (
    ("find", "found"), ("carry", "carried"), ("measure", "measured"), ("weigh", "weighed"),
    ("feed", "fed"), ("pet", "petted"), ("brush", "brushed"), ("chase", "chased"),
    ("follow", "followed"), ("hug", "hugged"), ("adopt", "adopted"), ("watch", "watched"),
    ("rescue", "rescued"), ("bathe", "bathed"), ("groom", "groomed"), ("spoil", "spoiled"),
)

INTRANSITIVE_VERBS = (
    ("jump", "jumped"), ("smile", "smiled"), ("wave", "waved"), ("pause", "paused"),
    ("laugh", "laughed"), ("sleep", "slept"), ("hum", "hummed"), ("sing", "sang"),
    ("whistle", "whistled"), ("mumble", "mumbled"), ("sneeze", "sneezed"), ("nap", "napped"),
    ("dance", "danced"), ("bow", "bowed"), ("shiver", "shivered"), ("paddle", "paddled"),
    ("wobble", "wobbled"), ("stumble", "stumbled"), ("bounce", "bounced"),
    ("giggle", "giggled"), ("yawn", "yawned"), ("shrug", "shrugged"), ("swim", "swam"),
    ("stop", "stopped"), ("blush", "blushed"), ("wait", "waited"), ("rest", "rested"),
    ("play", "played"), ("whisper", "whispered"), ("vanish", "vanished"),
    ("march", "marched"), ("limp", "limped"), ("skip", "skipped"), ("hop", "hopped"),
    ("grumble", "grumbled"), ("moan", "moaned"), ("applaud", "applauded"),
)

NUMBERS = (
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fifteen", "twenty", "thirty-one", "forty-four", "fifty-five",
    "sixty-seven", "seventy-two", "eighty-nine", "ninety-nine", "a hundred", "a dozen",
    "several", "a few", "many", "both", "some",
)

_ANY_TIMES = (
    "on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday",
    "on Saturday", "on Sunday", "at midnight", "at noon", "at dawn", "in the evening",
    "before breakfast", "after lunch", "in April", "in May", "in September",
    "in November", "at half past nine", "during the storm", "in the autumn",
)
PAST_TIMES = _ANY_TIMES + (
    "this morning", "last night", "last summer", "yesterday", "ten minutes ago",
    "the other day", "a month ago",
)
FUTURE_TIMES = _ANY_TIMES + (
    "tomorrow", "by Thursday", "next week", "this afternoon", "next summer", "in a moment",
)
HABIT_TIMES = (
    "on Sundays", "on Mondays", "every weekend", "every morning", "in the evening",
    "at dawn", "after lunch", "before breakfast", "in the summer", "at night",
)

_POSSESSIVES = ("the", "my", "your", "our", "their", "her", "his", "this", "that")
_PRONOUNS = ("I", "we", "you", "they", "she", "he")
_PEOPLE_DETERMINERS = ("the", "my", "our", "your", "their")
_LINKING_VERBS = ("was", "looked", "seemed", "felt", "is", "looks")


# --------------------------------------------------------------------------
# Word helpers
# --------------------------------------------------------------------------


def plural(noun: str) -> str:
    """English plural of a vocabulary noun."""
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def third_person(verb: str) -> str:
    """Present-tense third-person singular of a regular base-form verb."""
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    return verb + "s"


def indefinite_article(word: str) -> str:
    """``a`` or ``an``; the vocabulary avoids words where spelling misleads (hour, unit)."""
    return "an" if word[0].lower() in "aeiou" else "a"


def count_bilabial_letters(sentence: str) -> int:
    """Number of letters p, b, m in ``sentence`` (a spelling proxy for bilabial consonants)."""
    return sum(sentence.lower().count(letter) for letter in "pbm")


# --------------------------------------------------------------------------
# Phrase builder and templates
# --------------------------------------------------------------------------


# Which verbs go with which nouns; objects are drawn twice as often.
_OBJECT_VERB_PAIRS = (
    (OBJECTS, GENERAL_VERBS), (OBJECTS, GENERAL_VERBS), (FOODS, FOOD_VERBS), (ANIMALS, ANIMAL_VERBS),
)


class _Phrases:
    """Random phrase constructors sharing one random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, options):
        return self.rng.choice(options)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def name(self) -> str:
        return self.pick(NAMES)

    def person(self) -> str:
        return f"{self.pick(_PEOPLE_DETERMINERS)} {self.pick(PEOPLE)}"

    def subject(self) -> str:
        return self.name() if self.chance(0.5) else self.person()

    def adjective(self) -> str:
        return self.pick(ADJECTIVES)

    def noun_phrase(self, noun: str, adjective_p: float = 0.6) -> str:
        words = [self.adjective(), noun] if self.chance(adjective_p) else [noun]
        if self.chance(0.25):
            return " ".join([indefinite_article(words[0]), *words])
        return " ".join([self.pick(_POSSESSIVES), *words])

    def thing_with_verb(self) -> tuple[str, tuple[str, str]]:
        """A noun and a (base, past) verb that can take it as an object."""
        nouns, verbs = self.pick(_OBJECT_VERB_PAIRS)
        return self.pick(nouns), self.pick(verbs)

    def any_noun(self) -> str:
        return self.pick(self.pick((OBJECTS, FOODS, ANIMALS)))

    def place(self) -> str:
        prepositions, places = self.pick(_PLACES)
        return f"{self.pick(prepositions)} the {self.pick(places)}"


    def count(self, noun: str) -> str:
        words = [self.pick(NUMBERS)]
        if self.chance(0.5):
            words.append(self.adjective())
        words.append(plural(noun))
        return " ".join(words)


def _statement(p: _Phrases) -> str:
    # "Pam calmly bought the bumpy map beneath the bridge."
    noun, (_, past) = p.thing_with_verb()
    return f"{p.subject()} {p.pick(ADVERBS)} {past} {p.noun_phrase(noun)} {p.place()}."


def _did_question(p: _Phrases) -> str:
    # "Did the plumber borrow my purple umbrella on Monday?"
    noun, (base, _) = p.thing_with_verb()
    return f"Did {p.subject()} {base} {p.noun_phrase(noun)} {p.pick(PAST_TIMES)}?"


def _pair_with_count(p: _Phrases) -> str:
    # "Bob and Mia packed twelve woolen mittens in the cabin."
    noun, (_, past) = p.thing_with_verb()
    return f"{p.name()} and {p.name()} {past} {p.count(noun)} {p.place()}."


def _why_question(p: _Phrases) -> str:
    # "Why did Bob hum so happily behind the barn?"
    base, _ = p.pick(INTRANSITIVE_VERBS)
    return f"Why did {p.subject()} {base} so {p.pick(ADVERBS)} {p.place()}?"


def _request(p: _Phrases) -> str:
    # "Please move the heavy box beside the pump, Pam!"
    noun, (base, _) = p.thing_with_verb()
    ending = f", {p.name()}!" if p.chance(0.4) else "!"
    return f"Please {base} {p.noun_phrase(noun)} {p.place()}{ending}"


def _description(p: _Phrases) -> str:
    # "The lamp by the pool was remarkably bright."
    noun = p.any_noun()
    return (f"{p.pick(_POSSESSIVES)} {noun} {p.place()} {p.pick(_LINKING_VERBS)} "
            f"{p.pick(DEGREE_WORDS)} {p.adjective()}.")


def _how_many(p: _Phrases) -> str:
    # "How many plums did Omar peel yesterday?"
    noun, (base, _) = p.thing_with_verb()
    return f"How many {plural(noun)} did {p.subject()} {base} {p.pick(PAST_TIMES)}?"


def _habit(p: _Phrases) -> str:
    # "My brother usually naps on the boardwalk on Sunday."
    # or "Pete hummed proudly by the fountain last night."
    base, past = p.pick(INTRANSITIVE_VERBS)
    if p.chance(0.5):
        verb = f"{p.pick(FREQUENCY_ADVERBS)} {third_person(base)}"
        return f"{p.subject()} {verb} {p.place()} {p.pick(HABIT_TIMES)}."
    return f"{p.subject()} {past} {p.pick(ADVERBS)} {p.place()} {p.pick(PAST_TIMES)}."


def _either_question(p: _Phrases) -> str:
    # "Is the soup in the kitchen warm or cool?"
    first, second = p.rng.sample(ADJECTIVES, 2)
    return f"Is {p.pick(_POSSESSIVES)} {p.any_noun()} {p.place()} {first} or {second}?"


def _we_list(p: _Phrases) -> str:
    # "We bought five peaches and a purple kite this morning."
    noun, (_, past) = p.thing_with_verb()
    return (f"{p.pick(_PRONOUNS)} {past} {p.count(noun)} and "
            f"{p.noun_phrase(p.any_noun(), adjective_p=0.8)} {p.pick(PAST_TIMES)}.")


def _what_a(p: _Phrases) -> str:
    # "What a bumpy boat Bob bought on Friday!"
    noun, (_, past) = p.thing_with_verb()
    adjective = p.adjective()
    return (f"What {indefinite_article(adjective)} {adjective} {noun} "
            f"{p.subject()} {past} {p.pick(PAST_TIMES)}!")


def _where_question(p: _Phrases) -> str:
    # "Where did the mayor put my velvet pillow after lunch?"
    verb = p.pick(("put", "hide", "leave", "keep", "find", "buy"))
    thing = p.noun_phrase(p.any_noun(), adjective_p=0.8)
    return f"Where did {p.subject()} {verb} {thing} {p.pick(PAST_TIMES)}?"


def _future(p: _Phrases) -> str:
    # "Maybe Paul will bake a plump pumpkin pie by Thursday."
    noun, (base, _) = p.thing_with_verb()
    modal = p.pick(("will", "might", "should", "must", "can", "may"))
    opener = p.pick(("", "", "Maybe ", "Perhaps ", "I bet ", "I promise "))
    return f"{opener}{p.subject()} {modal} {base} {p.noun_phrase(noun)} {p.pick(FUTURE_TIMES)}."


_TEMPLATES: tuple[Callable[[_Phrases], str], ...] = (
    _statement, _did_question, _pair_with_count, _why_question, _request, _description,
    _how_many, _habit, _either_question, _we_list, _what_a, _where_question, _future,
)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _acceptable(sentence: str) -> bool:
    n_words = len(sentence.split())
    return (MIN_WORDS <= n_words <= MAX_WORDS
            and count_bilabial_letters(sentence) >= MIN_BILABIAL_LETTERS)


def make_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences, the same list for the same ``seed``.

    Each sentence is plain ASCII, has ``MIN_WORDS``..``MAX_WORDS`` words, at
    least two bilabial letters, and ends with '.', '?' or '!'.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    phrases = _Phrases(rng)
    sentences: dict[str, None] = {}  # insertion-ordered set
    attempts_left = 50 * n + 1000
    while len(sentences) < n:
        if attempts_left == 0:
            raise RuntimeError(f"could only generate {len(sentences)} distinct sentences of {n}")
        attempts_left -= 1
        text = rng.choice(_TEMPLATES)(phrases)
        text = text[0].upper() + text[1:]
        if _acceptable(text):
            sentences.setdefault(text)
    return list(sentences)
