import roman


def numeral(number: int) -> str:
    return roman.toRoman(number)
