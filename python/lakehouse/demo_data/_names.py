"""Common US first and last names, roughly ordered from most to least frequent.

Hand-written for this project (no external data). Sampling weights fall off with
rank (see `rank_weights`), so popular combinations such as "Michael Smith" repeat
the way they do in any real candidate pool of a few hundred thousand people.
"""

from __future__ import annotations

import numpy as np

MALE_FIRST_NAMES: tuple[str, ...] = (
    "Michael", "James", "John", "Robert", "David", "William", "Jose", "Christopher",
    "Joseph", "Daniel", "Richard", "Thomas", "Anthony", "Juan", "Charles", "Mark",
    "Matthew", "Carlos", "Joshua", "Steven", "Kevin", "Brian", "Luis", "Jason",
    "Paul", "Andrew", "Ryan", "Eric", "Jesus", "Kenneth", "Timothy", "Jeffrey",
    "Miguel", "Jorge", "Brandon", "Justin", "Gary", "Donald", "Scott", "Antonio",
    "Jonathan", "Edward", "Francisco", "Ronald", "Tyler", "Stephen", "Gregory", "Larry",
    "Jacob", "Nicholas", "Adam", "Benjamin", "Samuel", "Raymond", "Patrick", "Frank",
    "Alexander", "Jerry", "Dennis", "Aaron", "Marcus", "Jose Luis", "Manuel", "Ricardo",
    "Terrence", "DeShawn", "Travis", "Cody", "Dustin", "Shane", "Wayne", "Roger",
    "Keith", "Billy", "Bobby", "Randy", "Ruben", "Pedro", "Alejandro", "Rafael",
    "Hector", "Eduardo", "Fernando", "Javier", "Roberto", "Sergio", "Oscar", "Victor",
    "Andre", "Darnell", "Jamal", "Tyrone", "Malik", "Isaiah", "Elijah", "Caleb",
    "Logan", "Austin", "Kyle", "Derek", "Trevor", "Chad", "Curtis", "Dale",
    "Troy", "Marvin", "Earl", "Leon", "Vincent", "Trent", "Duc", "Minh",
    "Wei", "Raj", "Arjun", "Mohammed", "Omar", "Ivan", "Dmitri", "Tomasz",
)

FEMALE_FIRST_NAMES: tuple[str, ...] = (
    "Mary", "Jennifer", "Maria", "Patricia", "Linda", "Elizabeth", "Jessica", "Sarah",
    "Karen", "Lisa", "Nancy", "Ashley", "Sandra", "Michelle", "Amanda", "Melissa",
    "Stephanie", "Rebecca", "Laura", "Angela", "Kimberly", "Rosa", "Ana", "Guadalupe",
    "Carmen", "Veronica", "Yolanda", "Brenda", "Tiffany", "Crystal", "Amber", "Heather",
    "Nicole", "Rachel", "Christina", "Samantha", "Danielle", "Latoya", "Keisha", "Shanice",
    "Tamika", "Ebony", "Jasmine", "Destiny", "Brittany", "Courtney", "Megan", "Kayla",
    "Emily", "Hannah", "Olivia", "Emma", "Sophia", "Isabella", "Mia", "Abigail",
    "Madison", "Taylor", "Alexis", "Sydney", "Gabriela", "Daniela", "Alejandra", "Adriana",
    "Leticia", "Marisol", "Lucia", "Elena", "Sofia", "Valeria", "Monica", "Diana",
    "Teresa", "Gloria", "Denise", "Tammy", "Tina", "Wendy", "Dawn", "Shannon",
    "Kelly", "Erin", "Holly", "April", "Misty", "Crystal Ann", "Lakisha", "Aaliyah",
    "Imani", "Nia", "Linh", "Mai", "Priya", "Fatima", "Aisha", "Svetlana",
)

LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
    "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker",
    "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy",
    "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey",
    "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
    "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers",
    "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell",
    "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher",
    "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham",
    "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant",
    "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray",
    "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods",
    "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb",
    "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter",
    "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz",
    "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd",
    "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice",
    "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver",
    "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kowalski", "O'Brien", "Nowak",
    "Yang", "Le", "Pham", "Singh", "Shah", "Ali", "Khan", "Lindqvist",
)


def rank_weights(count: int, flatten: float) -> np.ndarray:
    """Probabilities that decay like 1 / (rank + flatten).

    A small `flatten` makes the top names dominate; ~10-20 gives shares close to
    US frequencies (the most common name is a few percent of everyone).
    """
    weights = 1.0 / (np.arange(1, count + 1) + flatten)
    return weights / weights.sum()
