"""Generate the sample datasets from the task tables below.

Run from anywhere: ``python resources/datasets/make_samples.py``. It writes
``python-instructions.jsonl`` (alpaca form) and ``python-chat.jsonl`` (the same pairs as chat
messages) next to itself. Every answer is checked before it is written: it must parse with
:mod:`ast`, and where a task gives a check expression, the answer is executed and the check must
hold. The output is deterministic, so a diff of the JSONL files reviews a change to the tables.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (function name and parameters, what it does, body expression, check)
FUNCTIONS: list[tuple[str, str, str, str]] = [
    ("add(a, b)", "returns the sum of a and b", "a + b", "add(2, 3) == 5"),
    ("subtract(a, b)", "returns a minus b", "a - b", "subtract(5, 3) == 2"),
    ("multiply(a, b)", "returns the product of a and b", "a * b", "multiply(4, 3) == 12"),
    ("divide(a, b)", "returns a divided by b as a float", "a / b", "divide(7, 2) == 3.5"),
    (
        "floor_divide(a, b)",
        "returns the floor division of a by b",
        "a // b",
        "floor_divide(7, 2) == 3",
    ),
    ("remainder(a, b)", "returns the remainder of a divided by b", "a % b", "remainder(7, 3) == 1"),
    ("power(base, exponent)", "raises base to exponent", "base**exponent", "power(2, 10) == 1024"),
    ("average(a, b)", "returns the mean of two numbers", "(a + b) / 2", "average(2, 4) == 3"),
    ("larger(a, b)", "returns the larger of two numbers", "max(a, b)", "larger(3, 9) == 9"),
    ("smaller(a, b)", "returns the smaller of two numbers", "min(a, b)", "smaller(3, 9) == 3"),
    (
        "distance(a, b)",
        "returns the absolute difference of two numbers",
        "abs(a - b)",
        "distance(3, 10) == 7",
    ),
    ("is_even(n)", "returns True if n is even", "n % 2 == 0", "is_even(4) and not is_even(3)"),
    ("is_odd(n)", "returns True if n is odd", "n % 2 == 1", "is_odd(3) and not is_odd(4)"),
    (
        "is_positive(x)",
        "returns True if x is greater than zero",
        "x > 0",
        "is_positive(1) and not is_positive(0)",
    ),
    (
        "is_negative(x)",
        "returns True if x is less than zero",
        "x < 0",
        "is_negative(-1) and not is_negative(0)",
    ),
    ("square(x)", "returns x squared", "x * x", "square(5) == 25"),
    ("cube(x)", "returns x cubed", "x**3", "cube(3) == 27"),
    ("double(x)", "returns twice x", "2 * x", "double(21) == 42"),
    ("negate(x)", "returns the negation of x", "-x", "negate(5) == -5"),
    (
        "is_divisible(n, d)",
        "returns True if n is divisible by d",
        "n % d == 0",
        "is_divisible(9, 3) and not is_divisible(10, 3)",
    ),
    (
        "sign(x)",
        "returns -1, 0 or 1 depending on the sign of x",
        "(x > 0) - (x < 0)",
        "sign(-4) == -1 and sign(0) == 0 and sign(2) == 1",
    ),
    (
        "clamp(x, low, high)",
        "limits x to the range from low to high",
        "max(low, min(x, high))",
        "clamp(15, 0, 10) == 10 and clamp(-1, 0, 10) == 0",
    ),
    (
        "celsius_to_fahrenheit(c)",
        "converts degrees Celsius to Fahrenheit",
        "c * 9 / 5 + 32",
        "celsius_to_fahrenheit(100) == 212",
    ),
    (
        "fahrenheit_to_celsius(f)",
        "converts degrees Fahrenheit to Celsius",
        "(f - 32) * 5 / 9",
        "fahrenheit_to_celsius(212) == 100",
    ),
    (
        "km_to_miles(km)",
        "converts kilometres to miles",
        "km * 0.621371",
        "round(km_to_miles(10), 2) == 6.21",
    ),
    (
        "is_leap_year(year)",
        "returns True for a leap year",
        "year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
        "is_leap_year(2000) and not is_leap_year(1900) and is_leap_year(2024)",
    ),
    (
        "digit_sum(n)",
        "returns the sum of the digits of a non-negative integer",
        "sum(int(d) for d in str(n))",
        "digit_sum(1234) == 10",
    ),
    (
        "count_digits(n)",
        "returns how many digits a non-negative integer has",
        "len(str(n))",
        "count_digits(12345) == 5",
    ),
    (
        "reverse_number(n)",
        "reverses the digits of a non-negative integer",
        "int(str(n)[::-1])",
        "reverse_number(1230) == 321",
    ),
    ("reverse_string(s)", "returns s reversed", "s[::-1]", "reverse_string('abc') == 'cba'"),
    (
        "is_palindrome(s)",
        "returns True if s reads the same backwards",
        "s == s[::-1]",
        "is_palindrome('level') and not is_palindrome('python')",
    ),
    (
        "count_vowels(s)",
        "counts the vowels in s",
        "sum(1 for ch in s.lower() if ch in 'aeiou')",
        "count_vowels('Education') == 5",
    ),
    (
        "capitalize_words(s)",
        "capitalizes the first letter of every word",
        "' '.join(word.capitalize() for word in s.split())",
        "capitalize_words('hello big world') == 'Hello Big World'",
    ),
    (
        "remove_spaces(s)",
        "removes every space from s",
        "s.replace(' ', '')",
        "remove_spaces('a b c') == 'abc'",
    ),
    (
        "count_words(s)",
        "counts the words in s",
        "len(s.split())",
        "count_words('one two  three') == 3",
    ),
    (
        "first_char(s)",
        "returns the first character of s, or an empty string",
        "s[:1]",
        "first_char('python') == 'p' and first_char('') == ''",
    ),
    (
        "last_char(s)",
        "returns the last character of s, or an empty string",
        "s[-1:]",
        "last_char('python') == 'n'",
    ),
    (
        "shout(s)",
        "returns s in upper case with an exclamation mark",
        "s.upper() + '!'",
        "shout('hi') == 'HI!'",
    ),
    (
        "starts_with_vowel(s)",
        "returns True if s starts with a vowel",
        "s[:1].lower() in ('a', 'e', 'i', 'o', 'u')",
        "starts_with_vowel('Apple') and not starts_with_vowel('pear')",
    ),
    (
        "is_anagram(a, b)",
        "returns True if a and b are anagrams",
        "sorted(a) == sorted(b)",
        "is_anagram('listen', 'silent')",
    ),
    (
        "acronym(phrase)",
        "builds an upper-case acronym from a phrase",
        "''.join(word[0].upper() for word in phrase.split())",
        "acronym('portable network graphics') == 'PNG'",
    ),
    (
        "truncate(s, n)",
        "shortens s to at most n characters",
        "s[:n]",
        "truncate('abcdef', 3) == 'abc'",
    ),
    (
        "contains_digit(s)",
        "returns True if s contains a digit",
        "any(ch.isdigit() for ch in s)",
        "contains_digit('a1') and not contains_digit('ab')",
    ),
    (
        "is_blank(s)",
        "returns True if s is empty or only whitespace",
        "not s.strip()",
        "is_blank('  ') and not is_blank(' x ')",
    ),
    (
        "sum_list(numbers)",
        "returns the sum of a list of numbers",
        "sum(numbers)",
        "sum_list([1, 2, 3]) == 6",
    ),
    (
        "mean(numbers)",
        "returns the arithmetic mean of a non-empty list",
        "sum(numbers) / len(numbers)",
        "mean([1, 2, 3, 4]) == 2.5",
    ),
    (
        "largest(numbers)",
        "returns the largest number in a list",
        "max(numbers)",
        "largest([3, 9, 2]) == 9",
    ),
    (
        "smallest(numbers)",
        "returns the smallest number in a list",
        "min(numbers)",
        "smallest([3, 9, 2]) == 2",
    ),
    (
        "second_largest(numbers)",
        "returns the second largest distinct number",
        "sorted(set(numbers))[-2]",
        "second_largest([4, 1, 4, 3]) == 3",
    ),
    (
        "dedupe(items)",
        "removes duplicates and keeps the first occurrence order",
        "list(dict.fromkeys(items))",
        "dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]",
    ),
    (
        "flatten(lists)",
        "flattens a list of lists by one level",
        "[item for sub in lists for item in sub]",
        "flatten([[1, 2], [3], []]) == [1, 2, 3]",
    ),
    (
        "chunk(items, size)",
        "splits a list into chunks of the given size",
        "[items[i : i + size] for i in range(0, len(items), size)]",
        "chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]",
    ),
    (
        "count_of(items, value)",
        "counts how often value occurs in items",
        "items.count(value)",
        "count_of([1, 2, 1], 1) == 2",
    ),
    (
        "rotate_left(items, k)",
        "rotates a list k places to the left",
        "items[k % len(items) :] + items[: k % len(items)] if items else []",
        "rotate_left([1, 2, 3, 4], 1) == [2, 3, 4, 1]",
    ),
    (
        "first_n(items, n)",
        "returns the first n items",
        "items[:n]",
        "first_n([1, 2, 3], 2) == [1, 2]",
    ),
    (
        "last_n(items, n)",
        "returns the last n items",
        "items[-n:] if n > 0 else []",
        "last_n([1, 2, 3], 2) == [2, 3] and last_n([1], 0) == []",
    ),
    (
        "evens(numbers)",
        "keeps only the even numbers",
        "[n for n in numbers if n % 2 == 0]",
        "evens([1, 2, 3, 4]) == [2, 4]",
    ),
    (
        "odds(numbers)",
        "keeps only the odd numbers",
        "[n for n in numbers if n % 2 == 1]",
        "odds([1, 2, 3, 4]) == [1, 3]",
    ),
    (
        "squares(numbers)",
        "squares every number in a list",
        "[n * n for n in numbers]",
        "squares([1, 2, 3]) == [1, 4, 9]",
    ),
    (
        "pairs_to_dict(keys, values)",
        "builds a dict from a list of keys and a list of values",
        "dict(zip(keys, values))",
        "pairs_to_dict(['a', 'b'], [1, 2]) == {'a': 1, 'b': 2}",
    ),
    (
        "invert(mapping)",
        "swaps the keys and values of a dict",
        "{value: key for key, value in mapping.items()}",
        "invert({'a': 1}) == {1: 'a'}",
    ),
    (
        "word_lengths(words)",
        "maps each word to its length",
        "{word: len(word) for word in words}",
        "word_lengths(['hi', 'you']) == {'hi': 2, 'you': 3}",
    ),
    (
        "sort_by_length(words)",
        "sorts words from shortest to longest",
        "sorted(words, key=len)",
        "sort_by_length(['ccc', 'a', 'bb']) == ['a', 'bb', 'ccc']",
    ),
    (
        "sort_descending(numbers)",
        "sorts numbers from largest to smallest",
        "sorted(numbers, reverse=True)",
        "sort_descending([2, 3, 1]) == [3, 2, 1]",
    ),
    (
        "common(a, b)",
        "returns the sorted items two lists share",
        "sorted(set(a) & set(b))",
        "common([1, 2, 3], [2, 3, 4]) == [2, 3]",
    ),
    (
        "all_positive(numbers)",
        "returns True if every number is positive",
        "all(n > 0 for n in numbers)",
        "all_positive([1, 2]) and not all_positive([1, -2])",
    ),
    (
        "any_negative(numbers)",
        "returns True if any number is negative",
        "any(n < 0 for n in numbers)",
        "any_negative([1, -2]) and not any_negative([1])",
    ),
    (
        "join_words(words)",
        "joins words with single spaces",
        "' '.join(words)",
        "join_words(['a', 'b']) == 'a b'",
    ),
    (
        "get_or_default(mapping, key)",
        "returns mapping[key], or 0 when the key is missing",
        "mapping.get(key, 0)",
        "get_or_default({'a': 1}, 'b') == 0",
    ),
    (
        "running_total(numbers)",
        "returns the running totals of a list",
        "[sum(numbers[: i + 1]) for i in range(len(numbers))]",
        "running_total([1, 2, 3]) == [1, 3, 6]",
    ),
    (
        "index_of(items, value)",
        "returns the index of value, or -1 if it is absent",
        "items.index(value) if value in items else -1",
        "index_of([5, 6], 6) == 1 and index_of([5], 7) == -1",
    ),
]

# (function name, what it does, full definition, check): tasks that need a loop or statements.
PROGRAMS: list[tuple[str, str, str, str]] = [
    (
        "factorial",
        "computes n! for a non-negative integer n",
        """def factorial(n):
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result""",
        "factorial(5) == 120 and factorial(0) == 1",
    ),
    (
        "fibonacci",
        "returns the n-th Fibonacci number (fibonacci(0) == 0)",
        """def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a""",
        "fibonacci(10) == 55",
    ),
    (
        "is_prime",
        "returns True if n is a prime number",
        """def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True""",
        "is_prime(13) and not is_prime(15) and not is_prime(1)",
    ),
    (
        "gcd",
        "returns the greatest common divisor of two integers",
        """def gcd(a, b):
    while b:
        a, b = b, a % b
    return abs(a)""",
        "gcd(12, 18) == 6",
    ),
    (
        "lcm",
        "returns the least common multiple of two positive integers",
        """import math


def lcm(a, b):
    return a * b // math.gcd(a, b)""",
        "lcm(4, 6) == 12",
    ),
    (
        "char_frequency",
        "counts how often each character occurs in a string",
        """def char_frequency(s):
    counts = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    return counts""",
        "char_frequency('aab') == {'a': 2, 'b': 1}",
    ),
    (
        "longest_word",
        "returns the longest word in a sentence",
        """def longest_word(sentence):
    return max(sentence.split(), key=len)""",
        "longest_word('a quick brown fox') == 'quick'",
    ),
    (
        "merge_sorted",
        "merges two sorted lists into one sorted list",
        """def merge_sorted(a, b):
    result = []
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            result.append(a[i])
            i += 1
        else:
            result.append(b[j])
            j += 1
    return result + a[i:] + b[j:]""",
        "merge_sorted([1, 4], [2, 3, 5]) == [1, 2, 3, 4, 5]",
    ),
    (
        "binary_search",
        "returns the index of target in a sorted list, or -1",
        """def binary_search(items, target):
    low, high = 0, len(items) - 1
    while low <= high:
        mid = (low + high) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            low = mid + 1
        else:
            high = mid - 1
    return -1""",
        "binary_search([1, 3, 5, 7], 5) == 2 and binary_search([1, 3], 4) == -1",
    ),
    (
        "group_by_first_letter",
        "groups words by their first letter",
        """def group_by_first_letter(words):
    groups = {}
    for word in words:
        groups.setdefault(word[0], []).append(word)
    return groups""",
        "group_by_first_letter(['ant', 'bee', 'ape']) == {'a': ['ant', 'ape'], 'b': ['bee']}",
    ),
    (
        "most_common",
        "returns the most common item in a list",
        """from collections import Counter


def most_common(items):
    return Counter(items).most_common(1)[0][0]""",
        "most_common([1, 2, 2, 3]) == 2",
    ),
    (
        "fizzbuzz",
        "returns 'Fizz', 'Buzz', 'FizzBuzz' or the number as a string",
        """def fizzbuzz(n):
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)""",
        "fizzbuzz(15) == 'FizzBuzz' and fizzbuzz(9) == 'Fizz' and fizzbuzz(7) == '7'",
    ),
    (
        "count_lines",
        "counts the lines in a text file",
        """def count_lines(path):
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle)""",
        "",
    ),
    (
        "read_words",
        "reads a text file and returns its words",
        """def read_words(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().split()""",
        "",
    ),
    (
        "write_lines",
        "writes a list of strings to a file, one per line",
        """def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\\n")""",
        "",
    ),
    (
        "parse_int",
        "converts a string to an int, or returns None if it is not a number",
        """def parse_int(text):
    try:
        return int(text)
    except ValueError:
        return None""",
        "parse_int('42') == 42 and parse_int('x') is None",
    ),
    (
        "safe_divide",
        "divides a by b and returns None when b is zero",
        """def safe_divide(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return None""",
        "safe_divide(1, 0) is None and safe_divide(6, 3) == 2",
    ),
    (
        "countdown",
        "yields the numbers from n down to 1",
        """def countdown(n):
    while n > 0:
        yield n
        n -= 1""",
        "list(countdown(3)) == [3, 2, 1]",
    ),
    (
        "evens_up_to",
        "yields the even numbers from 0 up to n",
        """def evens_up_to(n):
    for i in range(0, n + 1, 2):
        yield i""",
        "list(evens_up_to(6)) == [0, 2, 4, 6]",
    ),
    (
        "transpose",
        "transposes a matrix given as a list of rows",
        """def transpose(matrix):
    return [list(row) for row in zip(*matrix)]""",
        "transpose([[1, 2], [3, 4]]) == [[1, 3], [2, 4]]",
    ),
    (
        "matrix_sum",
        "adds two matrices of the same shape",
        """def matrix_sum(a, b):
    return [[x + y for x, y in zip(row_a, row_b)] for row_a, row_b in zip(a, b)]""",
        "matrix_sum([[1]], [[2]]) == [[3]]",
    ),
    (
        "bubble_sort",
        "sorts a list with bubble sort and returns it",
        """def bubble_sort(items):
    items = list(items)
    for end in range(len(items) - 1, 0, -1):
        for i in range(end):
            if items[i] > items[i + 1]:
                items[i], items[i + 1] = items[i + 1], items[i]
    return items""",
        "bubble_sort([3, 1, 2]) == [1, 2, 3]",
    ),
    (
        "caesar",
        "shifts each lower-case letter of a string by k places",
        """def caesar(text, k):
    result = []
    for ch in text:
        if "a" <= ch <= "z":
            ch = chr((ord(ch) - ord("a") + k) % 26 + ord("a"))
        result.append(ch)
    return "".join(result)""",
        "caesar('abc xyz', 1) == 'bcd yza'",
    ),
    (
        "word_count",
        "counts how often each word occurs in a text",
        """from collections import Counter


def word_count(text):
    return dict(Counter(text.lower().split()))""",
        "word_count('a b A') == {'a': 2, 'b': 1}",
    ),
    (
        "to_snake_case",
        "converts a CamelCase name to snake_case",
        """import re


def to_snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()""",
        "to_snake_case('HelloWorldAgain') == 'hello_world_again'",
    ),
    (
        "power_set",
        "returns every subset of a list",
        """from itertools import combinations


def power_set(items):
    return [list(c) for r in range(len(items) + 1) for c in combinations(items, r)]""",
        "len(power_set([1, 2, 3])) == 8",
    ),
]

# (names, parameters, what it does, body expression, check with {f} for the name): the one-line
# function families again, with many more names and values, so a small model learns the pattern
# ("copy the name, pick the parameters, write the expression") rather than a few answers. The
# held-out tasks in ../eval/make_tasks.py are drawn from these families; none of their wordings
# or solutions is here (tests/unit/test_eval_tasks.py checks).
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
                10: "ten", 11: "eleven", 12: "twelve", 100: "a hundred"}  # fmt: skip
VARIATIONS: list[tuple[tuple[str, ...], str, str, str, str]] = [
    # sums and products of several numbers
    (("add_four", "sum_of_four"), "a, b, c, d", "returns the sum of a, b, c and d", "a + b + c + d", "{f}(1, 2, 3, 4) == 10"),
    (("multiply_four", "product_of_four"), "a, b, c, d", "returns the product of a, b, c and d", "a * b * c * d", "{f}(1, 2, 3, 4) == 24"),
    (("add_then_subtract",), "a, b, c", "returns a plus b minus c", "a + b - c", "{f}(5, 2, 3) == 4"),
    (("multiply_then_add",), "a, b, c", "returns the product of a and b plus c", "a * b + c", "{f}(2, 3, 4) == 10"),
    (("sum_times",), "a, b, c", "returns the sum of a and b times c", "(a + b) * c", "{f}(1, 2, 3) == 9"),
    (("add_pair", "plus"), "x, y", "returns the sum of x and y", "x + y", "{f}(2, 5) == 7"),
    (("product_pair", "times"), "x, y", "returns the product of x and y", "x * y", "{f}(2, 5) == 10"),
    (("sum_of_xyz_squares",), "x, y, z", "returns the sum of the squares of x, y and z", "x * x + y * y + z * z", "{f}(1, 2, 3) == 14"),
    # largest and smallest
    (("smallest_of_three", "min_of_three"), "a, b, c", "returns the smallest of three numbers", "min(a, b, c)", "{f}(4, 1, 7) == 1"),
    (("largest_of_four", "max_of_four"), "a, b, c, d", "returns the largest of four numbers", "max(a, b, c, d)", "{f}(4, 1, 9, 7) == 9"),
    (("smallest_of_four",), "a, b, c, d", "returns the smallest of four numbers", "min(a, b, c, d)", "{f}(4, 1, 9, 7) == 1"),
    # unary number functions
    (("rounded", "round_number"), "x", "returns x rounded to the nearest whole number", "round(x)", "{f}(2.6) == 3"),
    (("integer_part",), "x", "returns the integer part of x", "int(x)", "{f}(7.9) == 7"),
    (("as_float", "to_float"), "x", "returns x as a float", "float(x)", "{f}(3) == 3.0"),
    (("as_text", "number_to_string"), "x", "returns x as a string", "str(x)", "{f}(42) == '42'"),
    (("abs_difference",), "x, y", "returns the absolute value of x minus y", "abs(x - y)", "{f}(2, 9) == 7"),
    (("abs_product",), "x, y", "returns the absolute value of x times y", "abs(x * y)", "{f}(-2, 4) == 8"),
    (("abs_sum",), "x, y", "returns the absolute value of the sum of x and y", "abs(x + y)", "{f}(-5, 1) == 4"),
    (("half_floor", "halve_whole"), "n", "returns half of n as a whole number", "n // 2", "{f}(9) == 4"),
    (("increment", "add_one"), "x", "returns x plus one", "x + 1", "{f}(4) == 5"),
    (("decrement", "subtract_one"), "x", "returns x minus one", "x - 1", "{f}(4) == 3"),
    (("add_ten",), "x", "returns x plus ten", "x + 10", "{f}(4) == 14"),
    (("subtract_five",), "x", "returns x minus five", "x - 5", "{f}(4) == -1"),
    (("cube_plus_one",), "x", "returns x cubed plus one", "x**3 + 1", "{f}(2) == 9"),
    # comparisons with a value
    (("is_one",), "x", "returns True if x equals one", "x == 1", "{f}(1) and not {f}(2)"),
    (("is_ten",), "x", "returns True if x equals ten", "x == 10", "{f}(10) and not {f}(2)"),
    (("is_seven", "is_lucky"), "n", "returns True if n equals seven", "n == 7", "{f}(7) and not {f}(2)"),
    (("is_hundred",), "x", "returns True if x equals a hundred", "x == 100", "{f}(100) and not {f}(2)"),
    (("is_not_zero", "is_nonzero"), "x", "returns True if x is not zero", "x != 0", "{f}(3) and not {f}(0)"),
    (("is_small",), "x", "returns True if x is less than ten", "x < 10", "{f}(3) and not {f}(10)"),
    (("is_big",), "x", "returns True if x is greater than a hundred", "x > 100", "{f}(101) and not {f}(3)"),
    (("is_between",), "x, low, high", "returns True if x is between low and high", "low <= x <= high", "{f}(3, 1, 5) and not {f}(9, 1, 5)"),
    (("is_equal", "same_value"), "a, b", "returns True if a equals b", "a == b", "{f}(2, 2) and not {f}(2, 3)"),
    # strings: case, ends, counts, words, characters
    (("to_title", "title_case"), "s", "returns s in title case", "s.title()", "{f}('big cat') == 'Big Cat'"),
    (("swap_case",), "s", "returns s with the case of every letter swapped", "s.swapcase()", "{f}('aB') == 'Ab'"),
    (("upper_stripped", "clean_upper"), "s", "returns s in upper case without surrounding spaces", "s.strip().upper()", "{f}(' ab ') == 'AB'"),
    (("lower_stripped", "clean_lower"), "s", "returns s in lower case without surrounding spaces", "s.strip().lower()", "{f}(' AB ') == 'ab'"),
    (("first_upper", "initial_upper"), "s", "returns the first letter of s in upper case", "s[:1].upper()", "{f}('cat') == 'C'"),
    (("first_lower",), "s", "returns the first letter of s in lower case", "s[:1].lower()", "{f}('Cat') == 'c'"),
    (("is_upper", "all_caps"), "s", "returns True if s is in upper case", "s.isupper()", "{f}('AB') and not {f}('Ab')"),
    (("is_lower", "all_lower"), "s", "returns True if s is in lower case", "s.islower()", "{f}('ab') and not {f}('Ab')"),
    (("strip_spaces", "trim"), "s", "returns s without surrounding spaces", "s.strip()", "{f}(' a ') == 'a'"),
    (("count_commas",), "s", "counts the commas in s", "s.count(',')", "{f}('a,b,c') == 2"),
    (("count_dots", "count_periods"), "s", "counts the dots in s", "s.count('.')", "{f}('a.b.c') == 2"),
    (("count_hyphens", "count_dashes"), "s", "counts the hyphens in s", "s.count('-')", "{f}('a-b') == 1"),
    (("count_letter_a",), "s", "counts the letter a in s", "s.count('a')", "{f}('banana') == 3"),
    (("count_newlines", "count_line_breaks"), "s", "counts the newlines in s", "s.count('\\n')", "{f}('a\\nb\\n') == 2"),
    (("count_tabs",), "s", "counts the tabs in s", "s.count('\\t')", "{f}('a\\tb') == 1"),
    (("count_char", "occurrences"), "s, ch", "counts how often ch occurs in s", "s.count(ch)", "{f}('hello', 'l') == 2"),
    (("second_word",), "s", "returns the second word of s", "s.split()[1]", "{f}('red green blue') == 'green'"),
    (("third_word",), "s", "returns the third word of s", "s.split()[2]", "{f}('red green blue') == 'blue'"),
    (("first_line", "top_line"), "s", "returns the first line of s", "s.splitlines()[0]", "{f}('a\\nb') == 'a'"),
    (("last_line", "bottom_line"), "s", "returns the last line of s", "s.splitlines()[-1]", "{f}('a\\nb') == 'b'"),
    (("first_letter", "initial"), "s", "returns the first letter of s", "s[0]", "{f}('cat') == 'c'"),
    (("last_letter", "final_letter"), "s", "returns the last letter of s", "s[-1]", "{f}('cat') == 't'"),
    (("words_reversed", "reverse_words"), "s", "returns the words of s in reverse order", "s.split()[::-1]", "{f}('a b c') == ['c', 'b', 'a']"),
    (("words_of", "split_words"), "s", "returns the words of s as a list", "s.split()", "{f}('a b') == ['a', 'b']"),
    (("ends_with_question_mark", "is_question"), "s", "returns True if s ends with a question mark", "s.endswith('?')", "{f}('Why?') and not {f}('Why')"),
    (("ends_with_exclamation", "is_exclamation"), "s", "returns True if s ends with an exclamation mark", "s.endswith('!')", "{f}('Hi!') and not {f}('Hi')"),
    (("ends_with_comma",), "s", "returns True if s ends with a comma", "s.endswith(',')", "{f}('a,') and not {f}('a')"),
    (("starts_with_period", "is_hidden_name"), "s", "returns True if s starts with a full stop", "s.startswith('.')", "{f}('.git') and not {f}('git')"),
    (("starts_with_hash", "is_comment"), "s", "returns True if s starts with a hash sign", "s.startswith('#')", "{f}('# x') and not {f}('x')"),
    (("ends_with_newline",), "s", "returns True if s ends with a newline", "s.endswith('\\n')", "{f}('a\\n') and not {f}('a')"),
    (("starts_with", "has_prefix"), "s, prefix", "returns True if s starts with prefix", "s.startswith(prefix)", "{f}('abc', 'ab')"),
    (("ends_with", "has_suffix"), "s, suffix", "returns True if s ends with suffix", "s.endswith(suffix)", "{f}('abc', 'bc')"),
    (("repeat_twice", "echo_twice"), "s", "returns s repeated twice", "s * 2", "{f}('ab') == 'abab'"),
    (("repeat_three_times",), "s", "returns s repeated three times", "s * 3", "{f}('ab') == 'ababab'"),
    (("repeat_list", "repeat_items"), "items, n", "returns the items of a list repeated n times", "items * n", "{f}([1], 3) == [1, 1, 1]"),
    (("join_twice",), "s, sep", "returns s twice joined by sep", "s + sep + s", "{f}('a', '-') == 'a-a'"),
    (("line_count", "number_of_lines"), "s", "returns the number of lines in s", "len(s.splitlines())", "{f}('a\\nb') == 2"),
    (("letters_without_spaces",), "s", "returns the number of characters in s that are not spaces", "len(s.replace(' ', ''))", "{f}('a b') == 2"),
    (("word_count_of",), "s", "returns the number of words in s", "len(s.split())", "{f}('a b c') == 3"),
    # lists
    (("key_count", "dict_size"), "mapping", "returns the number of keys in a dict", "len(mapping)", "{f}({'a': 1}) == 1"),
    (("distinct_count", "count_unique"), "items", "returns the number of distinct items in a list", "len(set(items))", "{f}([1, 1, 2]) == 2"),
    (("first_item", "head"), "items", "returns the first item of a list", "items[0]", "{f}([4, 5]) == 4"),
    (("second_item",), "items", "returns the second item of a list", "items[1]", "{f}([4, 5]) == 5"),
    (("last_two", "final_pair"), "items", "returns the last two items of a list", "items[-2:]", "{f}([1, 2, 3]) == [2, 3]"),
    (("first_three",), "items", "returns the first three items of a list", "items[:3]", "{f}([1, 2, 3, 4]) == [1, 2, 3]"),
    (("all_but_first", "tail"), "items", "returns every item of a list except the first", "items[1:]", "{f}([1, 2, 3]) == [2, 3]"),
    (("all_but_last",), "items", "returns every item of a list except the last", "items[:-1]", "{f}([1, 2, 3]) == [1, 2]"),
    (("sorted_items", "in_order"), "items", "returns the items of a list in sorted order", "sorted(items)", "{f}([3, 1, 2]) == [1, 2, 3]"),
    (("every_other",), "items", "returns every second item of a list", "items[::2]", "{f}([1, 2, 3]) == [1, 3]"),
    (("biggest", "max_of_list"), "numbers", "returns the biggest number in a list", "max(numbers)", "{f}([3, 9, 2]) == 9"),
    (("lowest", "min_of_list"), "numbers", "returns the lowest number in a list", "min(numbers)", "{f}([3, 9, 2]) == 2"),
    (("max_plus_min",), "numbers", "returns the largest number plus the smallest number", "max(numbers) + min(numbers)", "{f}([3, 9, 2]) == 11"),
    (("max_times_min",), "numbers", "returns the largest number times the smallest number", "max(numbers) * min(numbers)", "{f}([3, 9, 2]) == 18"),
    (("total", "sum_of"), "numbers", "returns the sum of a list of numbers", "sum(numbers)", "{f}([1, 2, 3]) == 6"),
    (("positives", "keep_positive"), "numbers", "keeps only the positive numbers", "[n for n in numbers if n > 0]", "{f}([3, -1, 0]) == [3]"),
    (("non_zero", "drop_zeros"), "numbers", "keeps only the numbers that are not zero", "[n for n in numbers if n != 0]", "{f}([3, 0]) == [3]"),
    (("above_ten", "greater_than_ten"), "numbers", "keeps only the numbers greater than ten", "[n for n in numbers if n > 10]", "{f}([3, 11]) == [11]"),
    (("multiples_of_three",), "numbers", "keeps only the multiples of three", "[n for n in numbers if n % 3 == 0]", "{f}([3, 4, 6]) == [3, 6]"),
    (("long_words", "keep_long_words"), "words", "keeps only the words longer than three characters", "[w for w in words if len(w) > 3]", "{f}(['a', 'tree']) == ['tree']"),
    (("triples", "tripled"), "numbers", "triples every number in a list", "[3 * n for n in numbers]", "{f}([1, 2]) == [3, 6]"),
    (("halves", "halved"), "numbers", "halves every number in a list", "[n / 2 for n in numbers]", "{f}([1, 4]) == [0.5, 2]"),
    (("negated", "negate_all"), "numbers", "negates every number in a list", "[-n for n in numbers]", "{f}([1, -2]) == [-1, 2]"),
    (("incremented", "add_one_to_each"), "numbers", "adds one to every number in a list", "[n + 1 for n in numbers]", "{f}([1, 2]) == [2, 3]"),
    (("absolutes", "abs_all"), "numbers", "takes the absolute value of every number in a list", "[abs(n) for n in numbers]", "{f}([-1, 2]) == [1, 2]"),
    (("upper_words", "shout_all"), "words", "upper-cases every word in a list", "[w.upper() for w in words]", "{f}(['a']) == ['A']"),
    (("lengths_of", "sizes"), "words", "returns the length of every word in a list", "[len(w) for w in words]", "{f}(['ab', 'c']) == [2, 1]"),
    (("sum_of_cubes",), "numbers", "returns the sum of the cubes of a list of numbers", "sum(n**3 for n in numbers)", "{f}([1, 2]) == 9"),
    (("sum_of_doubles",), "numbers", "returns the sum of twice every number in a list", "sum(2 * n for n in numbers)", "{f}([1, 2]) == 6"),
    (("sum_of_absolutes", "abs_total"), "numbers", "returns the sum of the absolute values of a list of numbers", "sum(abs(n) for n in numbers)", "{f}([-1, 2]) == 3"),
    (("sum_of_evens",), "numbers", "returns the sum of the even numbers in a list", "sum(n for n in numbers if n % 2 == 0)", "{f}([1, 2, 4]) == 6"),
    (("count_odds", "odd_count"), "numbers", "counts the odd numbers in a list", "sum(1 for n in numbers if n % 2 == 1)", "{f}([1, 2, 3]) == 2"),
    (("count_positives", "positive_count"), "numbers", "counts the positive numbers in a list", "sum(1 for n in numbers if n > 0)", "{f}([1, -2, 3]) == 2"),
    (("count_negatives", "negative_count"), "numbers", "counts the negative numbers in a list", "sum(1 for n in numbers if n < 0)", "{f}([1, -2, 3]) == 1"),
    (("count_zeros", "zero_count"), "numbers", "counts the zeros in a list", "sum(1 for n in numbers if n == 0)", "{f}([0, 1, 0]) == 2"),
    (("count_long_words",), "words", "counts the words in a list longer than three characters", "sum(1 for w in words if len(w) > 3)", "{f}(['a', 'tree']) == 1"),
    (("values_list", "dict_values"), "mapping", "returns the values of a dict as a list", "list(mapping.values())", "{f}({'a': 1}) == [1]"),
    (("items_list", "dict_pairs"), "mapping", "returns the key and value pairs of a dict as a list", "list(mapping.items())", "{f}({'a': 1}) == [('a', 1)]"),
    (("sorted_keys",), "mapping", "returns the keys of a dict in sorted order", "sorted(mapping)", "{f}({'b': 1, 'a': 2}) == ['a', 'b']"),
    (("longest_length", "max_word_length"), "words", "returns the length of the longest word in a list of words", "max(len(w) for w in words)", "{f}(['ab', 'cde']) == 3"),
    (("shortest_length",), "words", "returns the length of the shortest word in a list of words", "min(len(w) for w in words)", "{f}(['ab', 'cde']) == 2"),
    (("total_vowels",), "words", "returns the total number of vowels in a list of words", "sum(1 for w in words for ch in w if ch in 'aeiou')", "{f}(['ab', 'ee']) == 3"),
]  # fmt: skip

# (name, parameter, source unit, target unit, expression): "converts X to Y".
CONVERSIONS: list[tuple[str, str, str, str, str]] = [
    ("cm_to_inches", "cm", "centimetres", "inches", "cm / 2.54"),
    ("feet_to_inches", "feet", "feet", "inches", "feet * 12"),
    ("feet_to_cm", "feet", "feet", "centimetres", "feet * 30.48"),
    ("hours_to_minutes", "hours", "hours", "minutes", "hours * 60"),
    ("hours_to_seconds", "hours", "hours", "seconds", "hours * 3600"),
    ("seconds_to_minutes", "seconds", "seconds", "minutes", "seconds / 60"),
    ("minutes_to_hours", "minutes", "minutes", "hours", "minutes / 60"),
    ("days_to_hours", "days", "days", "hours", "days * 24"),
    ("weeks_to_days", "weeks", "weeks", "days", "weeks * 7"),
    ("metres_to_cm", "metres", "metres", "centimetres", "metres * 100"),
    ("cm_to_metres", "cm", "centimetres", "metres", "cm / 100"),
    ("km_to_metres", "km", "kilometres", "metres", "km * 1000"),
    ("miles_to_km", "miles", "miles", "kilometres", "miles * 1.609344"),
    ("kg_to_grams", "kg", "kilograms", "grams", "kg * 1000"),
    ("grams_to_kg", "grams", "grams", "kilograms", "grams / 1000"),
    ("kg_to_pounds", "kg", "kilograms", "pounds", "kg * 2.20462"),
    ("litres_to_ml", "litres", "litres", "millilitres", "litres * 1000"),
    ("bytes_to_bits", "count", "bytes", "bits", "count * 8"),
]


def _variation_rows() -> list[tuple[str, str, str, str]]:
    """``(name, what it does, definition, check)`` for every variation."""
    rows: list[tuple[str, str, str, str]] = []
    for names, params, doing, body, check in VARIATIONS:
        for name in names:
            code = f"def {name}({params}):\n    return {body}"
            rows.append((name, doing, code, check.replace("{f}", name)))
    # Each family leaves out the values of its held-out tasks (three times, a multiple of five).
    for value in (2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100):
        word = NUMBER_WORDS[value]
        name = f"times_{_ident(word)}"
        rows.append((name, f"returns {word} times x", f"def {name}(x):\n    return {value} * x", f"{name}(3) == {3 * value}"))
    for value in (2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 100):
        word = NUMBER_WORDS.get(value, "three")
        name = f"is_multiple_of_{_ident(word)}"
        rows.append((name, f"returns True if n is a multiple of {word}", f"def {name}(n):\n    return n % {value} == 0", f"{name}({value * 3}) and not {name}({value * 3 + 1})"))
    for value in (4, 5, 6, 7, 8, 9, 10, 11, 12, 100):
        word = NUMBER_WORDS[value]
        name = f"divide_by_{_ident(word)}"
        rows.append((name, f"returns x divided by {word} as a float", f"def {name}(x):\n    return x / {value}", f"{name}({value * 3}) == 3"))
    for value in (2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100):
        word = NUMBER_WORDS[value]
        name = f"plus_{_ident(word)}"
        rows.append((name, f"returns n plus {word}", f"def {name}(n):\n    return n + {value}", f"{name}(1) == {value + 1}"))
    for fraction, value in (("a third", 3), ("a quarter", 4), ("a fifth", 5), ("a tenth", 10)):
        name = f"{fraction.split()[1]}_of"
        rows.append((name, f"returns {fraction} of x as a float", f"def {name}(x):\n    return x / {value}", f"{name}({value * 2}) == 2"))
    for name, param, source, target, expr in CONVERSIONS:
        rows.append((name, f"converts {source} to {target}", f"def {name}({param}):\n    return {expr}", f"{name}(0) == 0"))
    return rows

# (instruction, code): idioms and small programs with no function to call.
SNIPPETS: list[tuple[str, str]] = [
    ("Swap the values of variables a and b.", "a, b = b, a"),
    ("Print the numbers from 1 to 10.", "for i in range(1, 11):\n    print(i)"),
    (
        "Print each item of the list fruits with its index.",
        "for index, fruit in enumerate(fruits):\n    print(index, fruit)",
    ),
    (
        "Loop over two lists, names and ages, at the same time.",
        'for name, age in zip(names, ages):\n    print(f"{name} is {age}")',
    ),
    (
        "Create a dictionary that maps the numbers 1 to 5 to their squares.",
        "squares = {n: n * n for n in range(1, 6)}",
    ),
    (
        "Read a whole text file into a string.",
        'with open("notes.txt", encoding="utf-8") as handle:\n    text = handle.read()',
    ),
    (
        "Write the string message to a file called out.txt.",
        'with open("out.txt", "w", encoding="utf-8") as handle:\n    handle.write(message)',
    ),
    (
        "List every .py file in the current folder with pathlib.",
        'from pathlib import Path\n\npython_files = sorted(Path(".").glob("*.py"))',
    ),
    (
        "Serialize the dictionary data to a JSON string.",
        "import json\n\ntext = json.dumps(data, indent=2)",
    ),
    ("Parse the JSON string text into a Python object.", "import json\n\ndata = json.loads(text)"),
    (
        "Get the current date and time as an ISO 8601 string.",
        "from datetime import datetime\n\nnow = datetime.now().isoformat()",
    ),
    (
        "Pick a random element from the list options, reproducibly.",
        "import random\n\nrng = random.Random(42)\nchoice = rng.choice(options)",
    ),
    (
        "Sort a list of dictionaries called people by their 'age' key.",
        'people.sort(key=lambda person: person["age"])',
    ),
    (
        "Count the words in the list words with collections.Counter.",
        "from collections import Counter\n\ncounts = Counter(words)",
    ),
    (
        "Group the (key, value) pairs in pairs into a dict of lists.",
        "from collections import defaultdict\n\ngroups = defaultdict(list)\nfor key, value in pairs:\n    groups[key].append(value)",
    ),
    (
        "Define a dataclass Point with float fields x and y.",
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Point:\n    x: float\n    y: float",
    ),
    (
        "Define a class Counter with an increment method.",
        "class Counter:\n    def __init__(self):\n        self.count = 0\n\n    def increment(self):\n        self.count += 1\n        return self.count",
    ),
    (
        "Define a class Stack with push, pop and is_empty.",
        "class Stack:\n    def __init__(self):\n        self._items = []\n\n    def push(self, item):\n        self._items.append(item)\n\n    def pop(self):\n        return self._items.pop()\n\n    def is_empty(self):\n        return not self._items",
    ),
    (
        "Define an Enum Color with RED, GREEN and BLUE.",
        "from enum import Enum\n\n\nclass Color(Enum):\n    RED = 1\n    GREEN = 2\n    BLUE = 3",
    ),
    (
        "Write a context manager that prints how long its block took.",
        'import time\nfrom contextlib import contextmanager\n\n\n@contextmanager\ndef timer():\n    start = time.perf_counter()\n    try:\n        yield\n    finally:\n        print(f"took {time.perf_counter() - start:.3f} s")',
    ),
    (
        "Write a decorator that prints the name of the function it wraps before calling it.",
        'import functools\n\n\ndef announce(func):\n    @functools.wraps(func)\n    def wrapper(*args, **kwargs):\n        print(f"calling {func.__name__}")\n        return func(*args, **kwargs)\n\n    return wrapper',
    ),
    (
        "Cache the results of a slow function fib with functools.",
        "import functools\n\n\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    ),
    (
        "Parse a --name command-line option with argparse.",
        'import argparse\n\nparser = argparse.ArgumentParser()\nparser.add_argument("--name", default="world")\nargs = parser.parse_args()\nprint(f"Hello, {args.name}")',
    ),
    (
        "Run the main function only when the file is executed as a script.",
        'def main():\n    print("running")\n\n\nif __name__ == "__main__":\n    main()',
    ),
    (
        "Log a warning with the logging module.",
        'import logging\n\nlogger = logging.getLogger(__name__)\nlogger.warning("disk almost full: %s%%", 95)',
    ),
    (
        "Ask the user for a number until they type a valid integer.",
        'while True:\n    try:\n        number = int(input("Number: "))\n        break\n    except ValueError:\n        print("Please type a whole number.")',
    ),
    ("Format the float price with two decimals in an f-string.", 'label = f"Price: {price:.2f}"'),
    ("Check whether every string in names is non-empty.", "ok = all(names)"),
    ("Find the items that are in set a but not in set b.", "only_in_a = a - b"),
    (
        "Remove every occurrence of None from the list values.",
        "values = [v for v in values if v is not None]",
    ),
    ("Reverse the list items in place.", "items.reverse()"),
    ("Get the unique words of a sentence, sorted.", "unique_words = sorted(set(sentence.split()))"),
    (
        "Split the string csv_line on commas and strip each field.",
        'fields = [field.strip() for field in csv_line.split(",")]',
    ),
    (
        "Read rows from a CSV file as dictionaries.",
        'import csv\n\nwith open("data.csv", newline="", encoding="utf-8") as handle:\n    rows = list(csv.DictReader(handle))',
    ),
    (
        "Measure how long a call to work() takes.",
        "import time\n\nstart = time.perf_counter()\nwork()\nelapsed = time.perf_counter() - start",
    ),
    (
        "Sum the squares of the numbers 1 to 100 with a generator expression.",
        "total = sum(n * n for n in range(1, 101))",
    ),
    ("Create a list of 10 zeros.", "zeros = [0] * 10"),
    ("Create a 3 by 3 grid of zeros without shared rows.", "grid = [[0] * 3 for _ in range(3)]"),
    ("Merge two dictionaries a and b, with b winning on conflicts.", "merged = {**a, **b}"),
    (
        "Get the key with the largest value in the dict scores.",
        "best = max(scores, key=scores.get)",
    ),
    (
        "Raise a ValueError if age is negative.",
        'if age < 0:\n    raise ValueError(f"age must be >= 0, got {age}")',
    ),
    (
        "Write a typed function that greets a person by name.",
        'def greet(name: str) -> str:\n    return f"Hello, {name}!"',
    ),
    (
        "Use a match statement to describe the HTTP status code status.",
        'match status:\n    case 200:\n        text = "OK"\n    case 404:\n        text = "Not Found"\n    case _:\n        text = "Other"',
    ),
    (
        "Write a unit test for an add function with unittest.",
        "import unittest\n\n\nclass AddTest(unittest.TestCase):\n    def test_adds(self):\n        self.assertEqual(add(2, 3), 5)",
    ),
    (
        "Write a pytest test that checks that int('x') raises ValueError.",
        'import pytest\n\n\ndef test_bad_int():\n    with pytest.raises(ValueError):\n        int("x")',
    ),
]

# (instruction, input code, fixed code): fixes and rewrites with an input.
FIXES: list[tuple[str, str, str]] = [
    (
        "Fix the bug in this function.",
        "def add(a, b):\n    return a - b",
        "def add(a, b):\n    return a + b",
    ),
    (
        "Fix the off-by-one error.",
        "def last(items):\n    return items[len(items)]",
        "def last(items):\n    return items[len(items) - 1]",
    ),
    (
        "Fix the mutable default argument.",
        "def append_to(item, target=[]):\n    target.append(item)\n    return target",
        "def append_to(item, target=None):\n    if target is None:\n        target = []\n    target.append(item)\n    return target",
    ),
    (
        "Fix the comparison with None.",
        "if value == None:\n    value = 0",
        "if value is None:\n    value = 0",
    ),
    (
        "Fix the file handling so the file is always closed.",
        'handle = open("data.txt")\ntext = handle.read()',
        'with open("data.txt", encoding="utf-8") as handle:\n    text = handle.read()',
    ),
    (
        "Fix the bare except.",
        "try:\n    value = int(text)\nexcept:\n    value = 0",
        "try:\n    value = int(text)\nexcept ValueError:\n    value = 0",
    ),
    (
        "Fix the infinite loop.",
        "i = 0\nwhile i < 10:\n    print(i)",
        "i = 0\nwhile i < 10:\n    print(i)\n    i += 1",
    ),
    (
        "Fix the function so that it returns the maximum.",
        "def biggest(numbers):\n    best = 0\n    for n in numbers:\n        if n > best:\n            best = n",
        "def biggest(numbers):\n    best = numbers[0]\n    for n in numbers:\n        if n > best:\n            best = n\n    return best",
    ),
    (
        "Fix the string concatenation with a number.",
        'message = "Total: " + total',
        'message = "Total: " + str(total)',
    ),
    (
        "Fix the modification of a list while iterating over it.",
        "for item in items:\n    if item < 0:\n        items.remove(item)",
        "items = [item for item in items if item >= 0]",
    ),
    (
        "Rewrite this loop as a list comprehension.",
        "result = []\nfor n in numbers:\n    result.append(n * 2)",
        "result = [n * 2 for n in numbers]",
    ),
    (
        "Rewrite this loop as a list comprehension.",
        "names = []\nfor user in users:\n    if user.active:\n        names.append(user.name)",
        "names = [user.name for user in users if user.active]",
    ),
    (
        "Rewrite this with enumerate.",
        "for i in range(len(items)):\n    print(i, items[i])",
        "for i, item in enumerate(items):\n    print(i, item)",
    ),
    (
        "Rewrite this with str.join.",
        'text = ""\nfor word in words:\n    text += word + " "',
        'text = " ".join(words)',
    ),
    (
        "Rewrite this with dict.get.",
        "if key in counts:\n    n = counts[key]\nelse:\n    n = 0",
        "n = counts.get(key, 0)",
    ),
    (
        "Rewrite this with an f-string.",
        'text = "Hello, " + name + "! You are " + str(age) + "."',
        'text = f"Hello, {name}! You are {age}."',
    ),
    (
        "Rewrite this with any().",
        "found = False\nfor n in numbers:\n    if n < 0:\n        found = True",
        "found = any(n < 0 for n in numbers)",
    ),
    (
        "Rewrite this with a with statement.",
        "lock.acquire()\ntry:\n    work()\nfinally:\n    lock.release()",
        "with lock:\n    work()",
    ),
    (
        "Add type hints to this function.",
        "def repeat(text, times):\n    return text * times",
        "def repeat(text: str, times: int) -> str:\n    return text * times",
    ),
    (
        "Add type hints to this function.",
        "def total(prices):\n    return sum(prices)",
        "def total(prices: list[float]) -> float:\n    return sum(prices)",
    ),
    (
        "Add a docstring to this function.",
        "def area(width, height):\n    return width * height",
        'def area(width, height):\n    """Return the area of a width by height rectangle."""\n    return width * height',
    ),
]

# (description, expression over x) for list comprehensions over `nums` and `words`.
NUMBER_MAPS = [("square", "x * x"), ("double", "x * 2"), ("add one to", "x + 1"), ("negate", "-x"),
               ("take the absolute value of", "abs(x)"), ("cube", "x**3"), ("convert to a string", "str(x)")]  # fmt: skip
NUMBER_FILTERS = [("even", "x % 2 == 0"), ("odd", "x % 2 == 1"), ("positive", "x > 0"), ("negative", "x < 0"),
                  ("greater than 10", "x > 10"), ("non-zero", "x != 0"), ("divisible by 3", "x % 3 == 0")]  # fmt: skip
WORD_MAPS = [("upper-case", "w.upper()"), ("lower-case", "w.lower()"), ("strip whitespace from", "w.strip()"),
             ("take the length of", "len(w)"), ("take the first letter of", "w[:1]"), ("reverse", "w[::-1]")]  # fmt: skip


def build() -> list[dict[str, str]]:
    """All instruction/response pairs, checked."""
    rows: list[dict[str, str]] = []
    for signature, doing, body, check in FUNCTIONS:
        code = f"def {signature}:\n    return {body}"
        rows.append(_row(function_request(code, doing), "", code, check))
    for _name, doing, code, check in PROGRAMS:
        rows.append(_row(function_request(code, doing), "", code, check))
    for _name, doing, code, check in _variation_rows():
        rows.append(_row(function_request(code, doing), "", code, check))
    for instruction, code in SNIPPETS:
        rows.append(_row(instruction, "", code, ""))
    for instruction, given, fixed in FIXES:
        rows.append(_row(instruction, given, fixed, ""))
    for words, expr in NUMBER_MAPS:
        code = f"result = [{expr} for x in nums]"
        rows.append(
            _row(
                f"Use a list comprehension to {words} each number in nums.",
                "nums = [1, -2, 3]",
                code,
                "",
            )
        )
    for words, cond in NUMBER_FILTERS:
        code = f"result = [x for x in nums if {cond}]"
        rows.append(
            _row(
                f"Keep only the {words} numbers in nums with a list comprehension.",
                "nums = [4, -9, 12, 0, 7]",
                code,
                "",
            )
        )
    for words, expr in WORD_MAPS:
        code = f"result = [{expr} for w in words]"
        rows.append(
            _row(
                f"Use a list comprehension to {words} each string in words.",
                'words = [" Apple", "pear "]',
                code,
                "",
            )
        )
    for words, cond in NUMBER_FILTERS:
        code = f"count = sum(1 for x in nums if {cond})"
        rows.append(_row(f"Count the {words} numbers in nums.", "", code, ""))
    for words, cond in NUMBER_FILTERS[:5]:
        code = f"def all_{_ident(words)}(nums):\n    return all({cond} for x in nums)"
        rows.append(
            _row(
                f"Write a function that returns True if every number in nums is {words}.",
                "",
                code,
                "",
            )
        )
    return rows


def function_request(code: str, doing: str) -> str:
    """The instruction for a function: its signature as the answer will write it, then the job.

    "Write a Python function triple(x) that returns three times x." The signature follows a
    space, not a backtick, on purpose: the starter model's byte-level tokenizer cuts a name after
    a backtick into other pieces than the same name after ``def `` (```triple``` is ``tri|ple``,
    ``def triple`` is ``def| t|rip|le``), so a small model could not copy it into its answer.
    """
    match = re.search(r"^def (\w+\(.*?\)):", code, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no function definition in {code!r}")
    return f"Write a Python function {match.group(1)} that {doing}."


def _ident(words: str) -> str:
    return "_".join(words.replace("-", " ").split())


def _row(instruction: str, given: str, output: str, check: str) -> dict[str, str]:
    try:
        tree = ast.parse(output)
    except SyntaxError as exc:
        raise SystemExit(f"answer to {instruction!r} does not parse: {exc}") from None
    if check:
        namespace: dict[str, object] = {}
        exec(compile(tree, "<answer>", "exec"), namespace)  # noqa: S102 - our own table
        if not eval(check, namespace):  # noqa: S307 - our own table
            raise SystemExit(f"answer to {instruction!r} fails its check: {check}")
    return {"instruction": instruction, "input": given, "output": output}


def main() -> int:
    """Write both sample files and report how many pairs they hold."""
    rows = build()
    keys = [(r["instruction"], r["input"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise SystemExit("two tasks have the same instruction and input")
    alpaca = HERE / "python-instructions.jsonl"
    chat = HERE / "python-chat.jsonl"
    with alpaca.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    with chat.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            user = f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]
            messages = [
                {"role": "user", "content": user},
                {"role": "assistant", "content": row["output"]},
            ]
            handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    sys.stdout.write(f"wrote {len(rows)} pairs to {alpaca.name} and {chat.name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
